"""Every limit on work a tenant can ask for, with its default: the one place they live.

`Limits` is mixed into each service's settings (like `KafkaSettings`), so each limit is an
environment variable of the same name in upper case (`MAX_MAP_ITEMS=500`), and the pure
domain takes a `Limits` as an argument (a service passes its settings). The README's limits
table is this class's fields; `python -m workflow.limits` prints it.

A limit is enforced before the work it bounds is done or stored, and a refusal names the
limit and its value (see `exceeded`).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

JITTER_MIN, JITTER_MAX = 0.5, 1.5
"""A retry's backoff is multiplied by a factor drawn uniformly from this range (everywhere a
retry is scheduled: steps, map items, webhook deliveries use their own documented schedule)."""


class Limits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", use_attribute_docstrings=True)

    # --- the HTTP edge -------------------------------------------------------------------
    max_body_bytes: int = Field(default=1 * MIB, ge=1024)
    """A JSON request body (413 above)."""
    max_json_depth: int = Field(default=64, ge=2, le=1000)
    """Nesting of arrays and objects in any JSON body (400 above)."""
    max_number_chars: int = Field(default=64, ge=16, le=4300)
    """Characters of one number literal in any JSON body (400 above; NaN/Infinity are refused)."""
    max_inputs_bytes: int = Field(default=256 * KIB, ge=1024)
    """A run's `inputs`, as compact JSON."""
    max_metadata_bytes: int = Field(default=16 * KIB, ge=256)
    """A run's `metadata`, as compact JSON."""
    max_upload_bytes: int = Field(default=50 * MIB, ge=1024)
    """One uploaded asset (`POST /v1/assets`)."""
    upload_content_types: str = (
        "image/png,image/jpeg,image/webp,image/gif,application/json,text/plain"
    )
    """What `POST /v1/assets` accepts (415 otherwise), comma separated."""

    # --- definitions (checked at registration) -------------------------------------------
    max_definition_bytes: int = Field(default=512 * KIB, ge=1024)
    """A workflow definition, as compact JSON."""
    max_nodes: int = Field(default=200, ge=1, le=10_000)
    """Nodes of one definition."""
    max_template_references: int = Field(default=2_000, ge=1)
    """`{{ … }}` references in one definition (params, map templates and outputs together)."""
    max_input_schema_bytes: int = Field(default=64 * KIB, ge=256)
    """A definition's `inputSchema`, as compact JSON."""
    max_timeout_seconds: float = Field(default=24 * 3600, gt=0)
    """The largest `timeoutSeconds` of a node or a map template."""
    max_run_timeout_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    """The largest `timeoutSeconds` of a run (definition, request body or `Cancel-After`)."""
    max_wait_node_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    """The largest `seconds` of a `wait` node."""
    default_step_timeout_seconds: float = Field(default=900, gt=0)
    """How long a step without `timeoutSeconds` may run (executor and orchestrator alike)."""
    max_schema_expansion: int = Field(default=2_000, ge=10, le=1_000_000)
    """Subschemas (`allOf`/`anyOf`/`oneOf`/`$ref`, nested) one value of the inputs may be
    checked against; an `inputSchema` that nests more widely is refused at registration."""
    max_schema_steps: int = Field(default=200_000, ge=1_000)
    """Keyword evaluations one run's inputs may take against the `inputSchema` (a bound on
    what registration cannot see, like `anyOf` branches recursing with the inputs); 422 above."""

    # --- runs (checked when the value is known) ------------------------------------------
    max_resolved_value_bytes: int = Field(default=256 * KIB, ge=1024)
    """A step's params after `{{ … }}` references are resolved, as compact JSON; the step
    fails `value_too_large` above."""
    max_step_output_bytes: int = Field(default=256 * KIB, ge=1024)
    """What one step or map item reports as its outputs (not asset bytes, which live in S3)."""
    max_run_state_bytes: int = Field(default=768 * KIB, ge=64 * KIB)
    """A run's whole state (inputs, outputs of every step, bookkeeping): bounded so that every
    run event fits one Kafka message (1 MiB)."""
    max_map_items: int = Field(default=1_000, ge=1)
    """Items of one `map` node."""
    max_map_concurrency: int = Field(default=64, ge=1)
    """The largest `concurrency` of a `map` node."""
    max_children_per_run: int = Field(default=200, ge=1)
    """Child runs one run starts (its `workflow.run` steps, retries included)."""
    max_descendants_per_root: int = Field(default=1_000, ge=1)
    """Runs started below one run started over the API, at every depth together."""
    max_chain_depth: int = Field(default=5, ge=1, le=50)
    """Levels of `workflow.run` below a run started over the API."""
    max_message_attempts: int = Field(default=5, ge=1, le=100)
    """Tries of one Kafka message before it is dead-lettered (and its run failed)."""
    message_attempt_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    """One try of an orchestrator message: a try still running then counts as failed, so a
    message holds its partition at most MAX_MESSAGE_ATTEMPTS tries of this plus the pauses
    between them (0.5 s doubling, at most 30 s each: 7.5 s in all for 5 tries)."""

    # --- what the executor fetches and decodes -------------------------------------------
    max_http_response_bytes: int = Field(default=1 * MIB, ge=1024)
    """An `http.request` response, counted on the wire and again after decoding."""
    max_image_pixels: int = Field(default=40_000_000, ge=4096)
    """Width times height of any image decoded or produced (inputs, providers, every node)."""
    max_image_side: int = Field(default=8192, ge=64)
    """The longest side of any image decoded or produced."""

    # --- a new tenant's rate limits and quotas (each tenant may have its own) -------------
    tenant_requests_per_second: float = Field(default=10, gt=0)
    """Authenticated requests per second (bursts up to twice as many); 429 above."""
    tenant_runs_per_minute: int = Field(default=180, ge=1)
    """Runs started over the API per minute (a few a second, like hosted APIs); 429 above."""
    tenant_concurrent_runs: int = Field(default=10, ge=1)
    """Runs started over the API that are queued or running at once; 429 above."""
    tenant_stored_bytes: int = Field(default=1 * GIB, ge=1024)
    """Bytes of uploaded assets a tenant keeps; 429 above."""


def exceeded(name: str, value: object) -> str:
    """How a refusal names its limit: `the limit MAX_MAP_ITEMS (1000)`."""
    return f"the limit {name.upper()} ({value})"


def table() -> str:
    """The README's limits table (markdown), from the fields above."""
    rows = ["| variable | default | what |", "|---|---|---|"]
    for name, info in Limits.model_fields.items():
        default = info.default
        what = (info.description or "").replace("\n", " ")
        rows.append(f"| `{name.upper()}` | {default} | {what} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
