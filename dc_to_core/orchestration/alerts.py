"""Alerts that reach a person: failed runs, failed ERROR checks and a quarantine share above a
threshold, by email and/or to a Slack or Teams incoming webhook, configured by environment.

- ``DC_TO_CORE_ALERT_EMAIL_TO``: comma-separated recipients (unset: no email);
  ``DC_TO_CORE_ALERT_EMAIL_FROM``: the sender (dc-to-core@localhost).
- ``DC_TO_CORE_SMTP_HOST``, ``DC_TO_CORE_SMTP_PORT``, ``DC_TO_CORE_SMTP_TYPE``: the server
  (localhost; 587 with STARTTLS, the default type, 465 with SSL).
- ``DC_TO_CORE_SMTP_USER``, ``DC_TO_CORE_SMTP_PASSWORD``: the login (the sender); without a
  password, mail is sent without logging in (a relay that trusts the host). The password is
  read from the environment of the processes that load the code location (Dagster's email
  sensor takes it when it is defined) and written nowhere.
- ``DC_TO_CORE_ALERT_WEBHOOK_URL``: a Slack or Teams incoming webhook (unset: none).
- ``DC_TO_CORE_ALERT_QUARANTINE_SHARE``: alert when a partition quarantines more than this
  share of its rows (0.01).
- ``DC_TO_CORE_ALERT_QUEUED_MINUTES``: alert when a run has been queued this long (60).
- ``DC_TO_CORE_WEBSERVER_URL``: the UI's base URL, for links in the alerts.

Failed runs go through Dagster's own ``make_email_on_run_failure_sensor`` (email with a
login; Dagster's always logs in, so without a password a ``run_failure_sensor`` of ours
sends it) and a ``run_failure_sensor`` that posts to the webhook; checks and quarantine
shares, which Dagster has no notification sensor for, go through the same two channels
from ``failed_checks``, and so does a stuck queue (``stuck_queue``: runs queued too long, with
the pool slots held by runs that have ended). Every alert is also written to the run's log
and as an ``alert`` observation on the partition.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage

import dagster as dg
import httpx

from .settings import env_number


@dataclass(frozen=True)
class AlertChannels:
    """Where alerts go, from the environment."""

    email_to: tuple[str, ...] = ()
    email_from: str = "dc-to-core@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_type: str = "STARTTLS"
    smtp_user: str = ""
    webhook_url: str = ""
    quarantine_share: float = 0.01
    queued_minutes: float = 60.0
    webserver_url: str = ""
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertChannels:
        env = os.environ if env is None else env
        smtp_type = env.get("DC_TO_CORE_SMTP_TYPE", "STARTTLS").upper()
        if smtp_type not in ("SSL", "STARTTLS"):
            raise ValueError(f"DC_TO_CORE_SMTP_TYPE must be SSL or STARTTLS, got {smtp_type!r}")
        sender = env.get("DC_TO_CORE_ALERT_EMAIL_FROM", "dc-to-core@localhost")
        return cls(
            email_to=tuple(a.strip() for a in env.get("DC_TO_CORE_ALERT_EMAIL_TO", "").split(",")
                           if a.strip()),
            email_from=sender, smtp_host=env.get("DC_TO_CORE_SMTP_HOST", "localhost"),
            smtp_port=int(env.get("DC_TO_CORE_SMTP_PORT") or (465 if smtp_type == "SSL"
                                                              else 587)),
            smtp_type=smtp_type, smtp_user=env.get("DC_TO_CORE_SMTP_USER", sender),
            webhook_url=env.get("DC_TO_CORE_ALERT_WEBHOOK_URL", ""),
            quarantine_share=env_number(env, "DC_TO_CORE_ALERT_QUARANTINE_SHARE", "0.01",
                                        zero_ok=True),
            queued_minutes=env_number(env, "DC_TO_CORE_ALERT_QUEUED_MINUTES", "60",
                                      zero_ok=True),
            webserver_url=env.get("DC_TO_CORE_WEBSERVER_URL", "").rstrip("/"), env=env)

    def password(self) -> str:
        return self.env.get("DC_TO_CORE_SMTP_PASSWORD", "")

    def run_link(self, run_id: str) -> str:
        return f" {self.webserver_url}/runs/{run_id}" if self.webserver_url else ""

    def send(self, subject: str, body: str, log: object | None = None) -> None:
        """Email and webhook, whichever are configured; a channel that fails is logged, not
        raised (the other still gets it, and the next alert tries again)."""
        if self.email_to:
            try:
                self.email(subject, body)
            except (OSError, smtplib.SMTPException) as exc:
                _warn(log, f"alert email to {', '.join(self.email_to)} via "
                           f"{self.smtp_host}:{self.smtp_port} failed: {exc}")
        if self.webhook_url:
            try:
                post_webhook(self.webhook_url, f"{subject}\n{body}")
            except WebhookError as exc:
                _warn(log, str(exc))

    def email(self, subject: str, body: str) -> None:
        """One email to the recipients (STARTTLS or SSL; a login when a password is set)."""
        message = EmailMessage()
        message["From"], message["To"] = self.email_from, ", ".join(self.email_to)
        message["Subject"] = subject
        message.set_content(body)
        context = ssl.create_default_context()
        if self.smtp_type == "SSL":
            server: smtplib.SMTP = smtplib.SMTP_SSL(self.smtp_host, self.smtp_port,
                                                    context=context, timeout=30)
        else:
            server = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=30)
            server.starttls(context=context)
        with server:
            if self.password():
                server.login(self.smtp_user, self.password())
            server.send_message(message)


class WebhookError(Exception):
    """The webhook did not take the alert (the message names its host, never its URL: the
    URL of an incoming webhook is its credential)."""


def post_webhook(url: str, text: str) -> None:
    """One message to a Slack or Teams incoming webhook (both take ``{"text": …}``)."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        raise WebhookError("DC_TO_CORE_ALERT_WEBHOOK_URL is not a valid URL") from None
    try:
        response = httpx.post(url, json={"text": text}, timeout=30)
    except httpx.HTTPError as exc:
        raise WebhookError(f"alert webhook at {host} unreachable: {type(exc).__name__}"
                           ) from None
    if response.status_code >= 300:
        raise WebhookError(f"alert webhook at {host} answered {response.status_code}")


def _warn(log: object | None, message: str) -> None:
    if log is not None:
        log.warning(message)  # type: ignore[attr-defined]


def failure_text(context: dg.RunFailureSensorContext, channels: AlertChannels) -> str:
    """What failed and what to do: each failed step's own message (they say it), the link."""
    run = context.dagster_run
    steps = [f"- {e.step_key}: {e.step_failure_data.error.message.strip()}"
             for e in context.get_step_failure_events()
             if e.step_failure_data and e.step_failure_data.error]
    return "\n".join([f"dc_to_core: run {run.run_id} ({run.job_name}, partition "
                      f"{run.tags.get('dagster/partition', '-')}) failed: "
                      f"{context.failure_event.message}", *steps]) + channels.run_link(run.run_id)


def notification_sensors(channels: AlertChannels) -> list[dg.SensorDefinition]:
    """Dagster's email sensor for failed runs, and the webhook one, where configured."""
    sensors: list[dg.SensorDefinition] = []
    if channels.email_to and channels.password():
        sensors.append(dg.make_email_on_run_failure_sensor(
            email_from=channels.email_from, email_password=channels.password(),
            email_to=list(channels.email_to), smtp_host=channels.smtp_host,
            smtp_type=channels.smtp_type, smtp_port=channels.smtp_port,
            smtp_user=channels.smtp_user, name="email_on_failed_runs",
            email_body_fn=lambda context: html.escape(failure_text(context, channels)
                                                      ).replace("\n", "<br>"),
            default_status=dg.DefaultSensorStatus.RUNNING))
    elif channels.email_to:
        @dg.run_failure_sensor(name="email_on_failed_runs",
                               default_status=dg.DefaultSensorStatus.RUNNING,
                               description="Emails every failed run (SMTP without login).")
        def email_on_failed_runs(context: dg.RunFailureSensorContext) -> None:
            run = context.dagster_run
            channels.email(f"dc_to_core: run {run.run_id} ({run.job_name}) failed",
                            failure_text(context, channels))
        sensors.append(email_on_failed_runs)
    if channels.webhook_url:
        @dg.run_failure_sensor(name="webhook_on_failed_runs",
                               default_status=dg.DefaultSensorStatus.RUNNING,
                               description="Posts every failed run to the alert webhook.")
        def webhook_on_failed_runs(context: dg.RunFailureSensorContext) -> None:
            try:
                post_webhook(channels.webhook_url, failure_text(context, channels))
            except WebhookError as exc:
                context.log.warning(str(exc))
        sensors.append(webhook_on_failed_runs)
    return sensors


def _alert(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str,
           keys: list[tuple[dg.AssetKey, str | None]]) -> None:
    instance.report_engine_event(f"dc_to_core alert: {message}", dagster_run=run)
    for key, partition in keys:
        instance.report_runless_asset_event(dg.AssetObservation(
            key, partition=partition, metadata={"alert": message, "run_id": run.run_id,
                                                "at": dt.datetime.now(dt.UTC).isoformat()}))


def _run_assets(instance: dg.DagsterInstance, run: dg.DagsterRun
                ) -> list[tuple[dg.AssetKey, str | None]]:
    """The (asset, partition) pairs a run set out to materialize."""
    partition = run.tags.get("dagster/partition")
    planned = {entry.dagster_event.event_specific_data.asset_key  # type: ignore[union-attr]
               for entry in instance.all_logs(
                   run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)}
    return [(k, partition) for k in sorted(planned or set(run.asset_selection or []),
                                           key=lambda k: k.to_string())]


@dg.run_failure_sensor(name="failed_runs", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Reports every failed run (UI backfills included).")
def failed_runs(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    reason = context.failure_event.message or "run failed"
    message = f"run {run.run_id} ({run.job_name}, partition " \
              f"{run.tags.get('dagster/partition', '-')}) failed: {reason}"
    context.log.error(message)
    _alert(context.instance, run, message, _run_assets(context.instance, run))


def _failed_error_checks(instance: dg.DagsterInstance, run: dg.DagsterRun
                         ) -> list[tuple[dg.AssetKey, str, str | None]]:
    failed = []
    for entry in instance.all_logs(run.run_id,
                                   of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append((evaluation.asset_key, evaluation.check_name, evaluation.partition))
    return failed


def _quarantine_shares(instance: dg.DagsterInstance, run: dg.DagsterRun, above: float
                       ) -> list[tuple[dg.AssetKey, str | None, int, int]]:
    """The run's materializations that quarantined more than ``above`` of their rows."""
    out = []
    for entry in instance.all_logs(run.run_id,
                                   of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = entry.dagster_event.event_specific_data.materialization  # type: ignore[union-attr]
        values = {k: v.value for k, v in m.metadata.items()}
        extracted, quarantined = values.get("rows_extracted"), values.get("rows_quarantined")
        if isinstance(extracted, int) and isinstance(quarantined, int) and extracted and \
                quarantined / extracted > above:
            out.append((m.asset_key, m.partition, quarantined, extracted))
    return out


@dg.run_status_sensor(name="failed_checks", run_status=dg.DagsterRunStatus.SUCCESS,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Alerts on ERROR-severity asset checks that failed in a run and "
                      "on partitions that quarantined more than DC_TO_CORE_ALERT_QUARANTINE_SHARE "
                      "of their rows.")
def failed_checks(context: dg.RunStatusSensorContext) -> None:
    run, channels = context.dagster_run, AlertChannels.from_env()
    failed = _failed_error_checks(context.instance, run)
    quarantined = _quarantine_shares(context.instance, run, channels.quarantine_share)
    lines = [f"ERROR check failed: {k.to_user_string()}:{c} (partition {p or '-'})"
             for k, c, p in failed]
    lines += [f"{k.to_user_string()} partition {p or '-'} quarantined {q} of {n} rows "
              f"({q / n:.1%}, above {channels.quarantine_share:.1%}); see its quarantine_path "
              "metadata for the rows and their reasons" for k, p, q, n in quarantined]
    if not lines:
        return
    message = f"run {run.run_id}: " + "; ".join(lines)
    context.log.error(message)
    _alert(context.instance, run, message, [(k, p) for k, _, p in failed] +
           [(k, p) for k, p, _, _ in quarantined])
    channels.send(f"dc_to_core: {len(lines)} problem(s) in run {run.run_id} ({run.job_name})",
                  "\n".join(lines) + channels.run_link(run.run_id), context.log)


def _slots_of_ended_runs(instance: dg.DagsterInstance) -> list[str]:
    """Pool slots claimed by runs that have ended: nothing gives them back but run monitoring
    (``free_slots_after_run_end_seconds``) or an operator."""
    storage = instance.event_log_storage
    held = []
    for pool in sorted(storage.get_concurrency_keys()):
        for claim in storage.get_concurrency_info(pool).claimed_slots:
            run = instance.get_run_by_id(claim.run_id)
            if run is None or run.is_finished:
                held.append(f"{pool} slot held by run {claim.run_id} ({claim.step_key}), "
                            f"which {'ended ' + run.status.value if run else 'is gone'}")
    return held


@dg.sensor(name="stuck_queue", minimum_interval_seconds=300,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Alerts when runs have been queued longer than "
                       "DC_TO_CORE_ALERT_QUEUED_MINUTES, naming pool slots held by ended runs.")
def stuck_queue(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
    channels = AlertChannels.from_env()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=channels.queued_minutes)
    queued = context.instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.QUEUED], created_before=since))
    alerted = set(context.cursor.split(",")) if context.cursor else set()
    new = [r for r in queued if r.dagster_run.run_id not in alerted]
    context.update_cursor(",".join(r.dagster_run.run_id for r in queued))  # still queued
    if not new:
        return dg.SkipReason(f"{len(queued)} run(s) queued longer than "
                             f"{channels.queued_minutes:g} min, none new")
    oldest = min(queued, key=lambda r: r.create_timestamp)
    held = _slots_of_ended_runs(context.instance)
    lines = [f"{len(queued)} run(s) queued longer than {channels.queued_minutes:g} min; the "
             f"oldest, {oldest.dagster_run.run_id} ({oldest.dagster_run.job_name}), since "
             f"{oldest.create_timestamp.isoformat(timespec='seconds')}.",
             *held,
             "Free those slots (Deployment > Concurrency in the UI) and check that run "
             "monitoring frees them (run_monitoring.free_slots_after_run_end_seconds in "
             "dagster.yaml; the daemon must be running)." if held else
             "No slot is held by an ended run: the runs ahead of them are still running (a "
             "night larger than max_concurrent_runs and the pools allow, or a hung run)."]
    message = " ".join(lines)
    context.log.error(message)
    for record in new:
        context.instance.report_engine_event(f"dc_to_core alert: {message}",
                                             dagster_run=record.dagster_run)
    channels.send(f"dc_to_core: {len(queued)} run(s) stuck in the queue", "\n".join(lines),
                  context.log)
    return None
