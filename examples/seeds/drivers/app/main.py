"""my-api (seed 000): `rootfs: ./app` is this directory, packed and uploaded by `mt apply`.

`python3 -m uvicorn main:app` serves `app`, a plain ASGI application (FastAPI's would do too).
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"service": "my-api"}\n'})
