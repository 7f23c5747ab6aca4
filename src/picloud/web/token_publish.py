"""``POST /realtime/topics/{topic}/messages``: publish with a subscriber token (issue #13).

On the app's own host, like the SSE route: Host -> app, ``Authorization: Bearer <token>``
where the token grants publish on that topic (``picloud.subscriber_token(...,
can_publish => true)``), body ``{"message": ...}``. The request joins the node's next
publish group (picloud.web.publish_group), whose one statement resolves the host, checks
the token and publishes: 404 for an unknown app or a missing or internal topic, 401 for
a token without the grant (never says why). Each token may publish
``PICLOUD_TOKEN_PUBLISH_RATE`` messages per second with a burst of twice that (at least
one), per node; more is 429 with ``Retry-After``.
"""

from __future__ import annotations

from aiohttp import web

from picloud import jsonnum
from picloud.web.auth import bearer_token
from picloud.web.errors import bad_request, error_response
from picloud.web.jsonio import json_response, read_object
from picloud.web.publish_group import Publish
from picloud.web.ratelimit import TokenBuckets, retry_after
from picloud.web.routing import routes
from picloud.web.state import publish_groups, state_of


def buckets(request: web.Request) -> TokenBuckets:
    state = state_of(request)
    if state.token_publish_buckets is None:
        rate = state.settings.token_publish_rate
        state.token_publish_buckets = TokenBuckets(rate, max(1.0, 2 * rate))
    return state.token_publish_buckets


@routes.post(
    "/realtime/topics/{topic}/messages",
    "Publish a message with a subscriber token that grants publish (on the app's host)",
    "realtime",
    ok_status=201,
    request_body={"type": "object", "required": ["message"], "properties": {"message": {}}},
)
async def token_publish(request: web.Request) -> web.Response:
    body = await read_object(request, {"message"})
    if "message" not in body:
        raise bad_request("'message' is required (any JSON value)")
    token = bearer_token(request)
    # Only tokens that published have a bucket (junk tokens cost no memory); a known one
    # is charged before the database is asked.
    limiter = buckets(request)
    if token is not None and token in limiter:
        wait = limiter.take(token)
        if wait > 0:
            response = error_response(
                429, "rate_limited", "this token publishes too fast; retry later"
            )
            response.headers["Retry-After"] = retry_after(wait)
            return response
    outcome = await publish_groups(request).publish(
        Publish(
            topic=request.match_info["topic"],
            messages=jsonnum.dumps(body["message"]),
            host=request.host,
            token=token,
        )
    )
    if outcome.error_state is not None or outcome.ids is None:
        raise outcome.refusal()  # 404 (unknown app or topic), 401 (the token), 400, 413
    if token is not None and token not in limiter:
        limiter.take(token)  # its first publish
    return json_response({"id": outcome.ids[0], "published_at": outcome.published_at}, status=201)
