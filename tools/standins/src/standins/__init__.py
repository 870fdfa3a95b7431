"""Local stand-ins for image providers' HTTP APIs, served on loopback for tests.

Each stand-in is a class holding its state and building a Starlette app that speaks one
provider's documented protocol (the module docstrings name the reference each one follows):

- `standins.openai.OpenAIImagesStandIn`: OpenAI Images, `POST /v1/images/generations`;
- `standins.replicate.ReplicateStandIn`: Replicate predictions;
- `standins.fal.FalQueueStandIn`: fal's queue API (`queue.fal.run`);
- `standins.comfyui.ComfyUIStandIn`: a ComfyUI server (`/prompt`, `/history`, `/view`, `/ws`).

`standins.server.serve` runs any of their apps on 127.0.0.1 in a background thread.
"""

from standins.base import RecordedRequest, StandIn
from standins.server import RoundRobinPorts, round_robin_ports, serve, serve_picking, wait_until

__all__ = [
    "RecordedRequest",
    "RoundRobinPorts",
    "StandIn",
    "round_robin_ports",
    "serve",
    "serve_picking",
    "wait_until",
]
