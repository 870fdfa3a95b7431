"""Outbound HTTP to user-given URLs that cannot be turned against our own network (SSRF).

policy = EgressSettings().egress_policy()
target = guard.check_url(url, policy)          # at request time: 422 with exc.reason
async with egress.client(policy) as http:      # at send time: resolved, checked, pinned
    await http.post(url, content=body)
"""

from egress import guard
from egress.body import ACCEPT_ENCODING, BodyTooLarge, UndecodableBody, read_bounded
from egress.guard import EgressRefused, Target, UnresolvableHost, check_url, resolve
from egress.policy import Category, EgressPolicy, EgressSettings, PolicyError
from egress.transport import GuardedTransport, client

__all__ = [
    "ACCEPT_ENCODING",
    "BodyTooLarge",
    "Category",
    "EgressPolicy",
    "EgressRefused",
    "EgressSettings",
    "GuardedTransport",
    "PolicyError",
    "Target",
    "UndecodableBody",
    "UnresolvableHost",
    "check_url",
    "client",
    "guard",
    "read_bounded",
    "resolve",
]
