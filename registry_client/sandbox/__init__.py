"""A sandbox registry: a seeded synthetic population served over the real wire contract."""

from registry_client.sandbox.app import (
    SANDBOX_TOKEN,
    Faults,
    RunningSandbox,
    create_sandbox_app,
    run_sandbox_forever,
    start_sandbox,
)
from registry_client.sandbox.masking import mask_name, normalize_name
from registry_client.sandbox.population import (
    CURRENT_QUARTER,
    HouseholdRecord,
    Person,
    Population,
    generate_population,
)

__all__ = [
    "CURRENT_QUARTER",
    "SANDBOX_TOKEN",
    "Faults",
    "HouseholdRecord",
    "Person",
    "Population",
    "RunningSandbox",
    "create_sandbox_app",
    "generate_population",
    "mask_name",
    "normalize_name",
    "run_sandbox_forever",
    "start_sandbox",
]
