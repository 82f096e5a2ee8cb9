"""HTTP routes of the emulated org, one module per API family."""
