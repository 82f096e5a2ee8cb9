"""Alerts reach a person: a real local SMTP server (aiosmtpd, STARTTLS and a login, as a
mail relay wants) and a local HTTP receiver standing in for a Slack/Teams incoming webhook
get the failed run, the failed ERROR check and the quarantine share above the threshold."""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from dc_to_core.bench.deployment import free_port
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.emulator.server import ensure_certificate
from dc_to_core.orchestration.alerts import (
    AlertChannels,
    failed_checks,
    notification_sensors,
    stuck_queue,
)
from dc_to_core_tests.pipeline_support import make_project
from dc_to_core_tests.support import OrgClient, csv_text

USER, PASSWORD = "alerts@example.com", "smtp-pa55"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mailbox, int]]:
    cert, key = ensure_certificate(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server's cert
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def login(server: object, session: object, envelope: object, mechanism: str,
              data: object) -> AuthResult:
        return AuthResult(success=isinstance(data, LoginPassword) and (
            data.login, data.password) == (USER.encode(), PASSWORD.encode()))

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=tls,
                            require_starttls=True, authenticator=login, auth_require_tls=True)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict], str]]:
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received, f"http://127.0.0.1:{server.server_port}/hooks/T000/B000"
    finally:
        server.shutdown()


@pytest.fixture
def channels(smtp, webhook, monkeypatch) -> AlertChannels:
    env = {"DC_TO_CORE_ALERT_EMAIL_TO": "oncall@example.com, data@example.com",
           "DC_TO_CORE_ALERT_EMAIL_FROM": USER, "DC_TO_CORE_SMTP_HOST": "127.0.0.1",
           "DC_TO_CORE_SMTP_PORT": str(smtp[1]), "DC_TO_CORE_SMTP_PASSWORD": PASSWORD,
           "DC_TO_CORE_ALERT_WEBHOOK_URL": webhook[1],
           "DC_TO_CORE_WEBSERVER_URL": "http://dagster.example.com"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return AlertChannels.from_env()


@pytest.fixture
def project(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=400,
                                                bad_share=0.05, seed=5))
    return make_project(server, tmp_path, partitions=1)


def test_a_failed_run_is_emailed_by_dagsters_sensor_and_posted_to_the_webhook(
        project, channels, smtp, webhook, monkeypatch):
    sensors = {s.name: s for s in notification_sensors(channels)}
    assert set(sensors) == {"email_on_failed_runs", "webhook_on_failed_runs"}
    monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", "wrong-secret")
    with dg.instance_for_test() as instance:
        result = project.run("Account", "p00", instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        for name, sensor in sensors.items():
            sensor(dg.build_run_status_sensor_context(
                sensor_name=name, dagster_instance=instance, dagster_run=result.dagster_run,
                dagster_event=failure).for_run_failure())
    (mail,) = smtp[0].messages
    assert mail["To"].replace(" ", "") == "oncall@example.com,data@example.com"
    assert result.run_id in mail["Subject"] + mail.get_payload()
    assert "Salesforce refused the login" in mail.get_payload()
    (posted,) = webhook[0]
    assert "load_Account" in posted["text"] and "partition p00" in posted["text"]
    assert f"http://dagster.example.com/runs/{result.run_id}" in posted["text"]
    assert "Salesforce refused the login" in posted["text"]
    assert "wrong-secret" not in posted["text"] + mail.as_string()


def test_failed_checks_and_a_high_quarantine_share_reach_both_channels(
        project, channels, smtp, webhook):
    with dg.instance_for_test() as instance:
        OrgClient(project.server).run_job("Account", csv_text(
            ["External_Id__c", "Name"], [["ACC-0000000-stray", "not in Data Cloud"]]))
        project.run("Account", "p00", instance)
        result = project.run("Opportunity", "p00", instance)
        assert result.success
        meta = project.materialization(result)
        assert meta["rows_quarantined"] / meta["rows_extracted"] > channels.quarantine_share
        account = project.run("Account", "p00", instance)
        for run in (account, result):
            success = next(e for e in run.all_events if e.event_type_value == "PIPELINE_SUCCESS")
            failed_checks(dg.build_run_status_sensor_context(
                sensor_name="failed_checks", dagster_instance=instance,
                dagster_run=run.dagster_run, dagster_event=success))
    subjects = [m["Subject"] for m in smtp[0].messages]
    bodies = [m.get_payload() for m in smtp[0].messages]
    assert len(subjects) == 2 and len(webhook[0]) == 2
    assert any("ERROR check failed: core/Account:counts_reconcile (partition p00)" in b
               for b in bodies)
    share = next(p["text"] for p in webhook[0] if "quarantined" in p["text"])
    assert "core/Opportunity partition p00 quarantined" in share and "above 1.0%" in share


def test_an_unreachable_mail_server_is_logged_and_the_webhook_still_gets_it(webhook):
    channels = AlertChannels.from_env({"DC_TO_CORE_ALERT_EMAIL_TO": "a@example.com",
                                       "DC_TO_CORE_SMTP_HOST": "127.0.0.1",
                                       "DC_TO_CORE_SMTP_PORT": str(free_port()),
                                       "DC_TO_CORE_ALERT_WEBHOOK_URL": webhook[1]})
    warnings: list[str] = []

    class Log:
        def warning(self, message: str) -> None:
            warnings.append(message)

    channels.send("subject", "body", Log())
    assert webhook[0] == [{"text": "subject\nbody"}]
    assert "alert email to a@example.com via 127.0.0.1" in warnings[0]


def test_the_code_location_wires_the_channels_from_the_environment(channels):
    from dc_to_core.orchestration.project import build_definitions

    names = {s.name for s in build_definitions().sensors}
    assert {"failed_runs", "failed_checks", "email_on_failed_runs",
            "webhook_on_failed_runs"} <= names


def test_a_relay_without_login_gets_the_failed_run_and_a_dead_webhook_is_named_not_shown(
        project, tmp_path, monkeypatch):
    cert, key = ensure_certificate(tmp_path / "relay")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    box, port = Mailbox(), free_port()
    relay = Controller(box, hostname="127.0.0.1", port=port, tls_context=tls,
                       require_starttls=True)
    relay.start()
    secret_hook = f"http://127.0.0.1:{free_port()}/hooks/T0/B0/s3cret-token"
    channels = AlertChannels.from_env({"DC_TO_CORE_ALERT_EMAIL_TO": "oncall@example.com",
                                       "DC_TO_CORE_SMTP_HOST": "127.0.0.1",
                                       "DC_TO_CORE_SMTP_PORT": str(port),
                                       "DC_TO_CORE_ALERT_WEBHOOK_URL": secret_hook})
    monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", "wrong-secret")
    try:
        with dg.instance_for_test() as instance:
            result = project.run("Account", "p00", instance)
            failure = next(e for e in result.all_events
                           if e.event_type_value == "PIPELINE_FAILURE")
            for sensor in notification_sensors(channels):
                sensor(dg.build_run_status_sensor_context(
                    sensor_name=sensor.name, dagster_instance=instance,
                    dagster_run=result.dagster_run, dagster_event=failure).for_run_failure())
            logs = " ".join(e.message or "" for e in instance.all_logs(result.run_id))
    finally:
        relay.stop()
    (mail,) = box.messages
    assert "Salesforce refused the login" in mail.get_payload()
    warned: list[str] = []

    class Log:
        def warning(self, message: str) -> None:
            warned.append(message)

    channels.send("subject", "body", Log())
    assert "alert webhook at 127.0.0.1 unreachable: ConnectError" in warned  # mail: relay gone
    assert "s3cret-token" not in logs + " ".join(warned)


def queued_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A run the queued run coordinator holds (enqueued, not started)."""
    origin = RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(
        code_location_origin=InProcessCodeLocationOrigin(loadable_target_origin=(
            LoadableTargetOrigin(module_name="dc_to_core.definitions"))),
        repository_name="__repository__"), job_name="load_Opportunity")
    return instance.add_run(dg.DagsterRun(job_name="load_Opportunity", run_id=str(uuid.uuid4()),
                                          status=dg.DagsterRunStatus.QUEUED,
                                          remote_job_origin=origin))


def test_a_stuck_queue_is_sent_once_naming_the_slot_an_ended_run_still_holds(
        project, webhook, monkeypatch):
    """Two runs queued past DC_TO_CORE_ALERT_QUEUED_MINUTES while a bulk_api slot is held by a
    run that was killed (ended FAILURE): one alert says so and what to do; the next tick,
    with nothing new queued, sends nothing."""
    monkeypatch.setenv("DC_TO_CORE_ALERT_WEBHOOK_URL", webhook[1])
    monkeypatch.setenv("DC_TO_CORE_ALERT_QUEUED_MINUTES", "0")
    with dg.instance_for_test() as instance:
        killed = instance.create_run_for_job(project.job("Opportunity"),
                                             status=dg.DagsterRunStatus.STARTED)
        storage = instance.event_log_storage
        storage.set_concurrency_slots("bulk_api", 2)
        assert storage.claim_concurrency_slot("bulk_api", killed.run_id,
                                              "opportunity_partition.opportunity_load").is_claimed
        instance.report_run_failed(killed)
        queued = [queued_run(instance) for _ in range(2)]
        context = dg.build_sensor_context(instance=instance)
        assert stuck_queue(context) is None
        again = stuck_queue(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    (posted,) = webhook[0]
    assert "2 run(s) queued longer than 0 min" in posted["text"]
    assert (f"bulk_api slot held by run {killed.run_id} (opportunity_partition.opportunity_load)"
            ", which ended FAILURE") in posted["text"]
    assert "Deployment > Concurrency" in posted["text"]
    assert queued[0].run_id in posted["text"] or queued[1].run_id in posted["text"]
    assert "none new" in again.skip_message


def test_an_alert_threshold_that_is_no_number_is_named():
    with pytest.raises(ValueError, match="DC_TO_CORE_ALERT_QUEUED_MINUTES must be a number"):
        AlertChannels.from_env({"DC_TO_CORE_ALERT_QUEUED_MINUTES": "an hour"})
