# (f) The receiver as Vobiz's docs show it for Python: Flask, raw body, HMAC-SHA256 hex,
# hmac.compare_digest, json.loads, route on X-Webhook-Event, 200. Served by gunicorn:
#
#   VOBIZ_WEBHOOK_SECRET=... gunicorn -w 2 -b 127.0.0.1:39106 app:app
import hashlib
import hmac
import json
import os

from flask import Flask, request

SECRET = os.environ.get("VOBIZ_WEBHOOK_SECRET", "your-shared-secret").encode()

app = Flask(__name__)


@app.post("/webhooks/vobiz")
def webhook():
    raw = request.get_data()
    signature = request.headers.get("X-Webhook-Signature", "")
    expected = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "", 401
    event = json.loads(raw)
    event_type = request.headers.get("X-Webhook-Event")
    if event_type == "message.inbound":
        pass  # handle event["payload"] here
    return "", 200
