#!/usr/bin/env bash
# Browser test of the live inbox page: headless Chromium (Debian's `chromium`) loads
# examples/inbox's page after three signed deliveries (a text, a read status, an incoming
# call); the page connects to /live/ws with ?since=0 and must show all three, resumed from
# the replay buffer. A wrong token must show the 401. The DOM and a screenshot are kept in
# $ARTEFACTS (default target/browser/).
#
#   cargo build --features live,cli --example inbox --bin vobiz && bash tests/browser/inbox.sh
#
# Live arrival while the page is open is covered by the Rust WebSocket tests (tests/live);
# this script checks the page itself: rendering, the token, the resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-target}"
INBOX="${VOBIZ_INBOX_BIN:-$TARGET/debug/examples/inbox}"
VOBIZ="${VOBIZ_BIN:-$TARGET/debug/vobiz}"
ARTEFACTS="${ARTEFACTS:-$TARGET/browser}"
CHROMIUM="${CHROMIUM:-chromium}"
mkdir -p "$ARTEFACTS"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
SECRET=browser-secret TOKEN=browser-token

VOBIZ_WEBHOOK_SECRET=$SECRET VOBIZ_LIVE_TOKEN=$TOKEN VOBIZ_ADDR=$ADDR "$INBOX" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "http://$ADDR/health" >/dev/null 2>&1 && break; sleep 0.05; done

send() { "$VOBIZ" trigger "$@" --url "http://$ADDR/webhooks/vobiz" --secret $SECRET --allow-http >/dev/null; }
send text --text "Hello from the browser test"
send status --status read --wamid wamid.BROWSER
send call.connect --from 918777777777

chrome() {
  timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --virtual-time-budget=5000 --window-size=1100,600 "$@" 2>/dev/null
}
# The page learns of a refusal only after a refused WebSocket handshake and a probe of the SSE
# route, and of the events only after the socket opens and replays them; on a loaded machine
# Chromium can dump the DOM before those round trips end (its virtual time does not wait for a
# WebSocket). So each page is looked at again, at most three times, before a check fails.
for _ in 1 2 3; do
  chrome --dump-dom "http://$ADDR/?token=$TOKEN" > "$ARTEFACTS/inbox.html"
  grep -qF 'data-state="ringing"' "$ARTEFACTS/inbox.html" && break
done
chrome --screenshot="$ARTEFACTS/inbox.png" "http://$ADDR/?token=$TOKEN" >/dev/null
for _ in 1 2 3; do
  chrome --dump-dom "http://$ADDR/?token=wrong" > "$ARTEFACTS/unauthorized.html"
  grep -qF 'data-state="unauthorized">401' "$ARTEFACTS/unauthorized.html" && break
done

fail=0
check() { # file, fixed string, what
  if grep -qF -- "$2" "$1"; then echo "ok   $3"; else echo "FAIL $3"; fail=1; fi
}
DOM="$ARTEFACTS/inbox.html"
check "$DOM" 'id="status" data-state="live">live<' "the stream is live"
check "$DOM" 'Hello from the browser test' "the message's text is shown"
check "$DOM" 'data-wamid="wamid.BROWSER"' "the status made a row for its wamid"
check "$DOM" 'data-status="read" title="read">✓✓<' "the read tick is shown"
check "$DOM" 'class="call"' "the incoming call is shown"
check "$DOM" 'data-state="ringing"' "the call is ringing"
check "$ARTEFACTS/unauthorized.html" 'data-state="unauthorized">401' "a wrong token shows the 401"
test -s "$ARTEFACTS/inbox.png" && echo "ok   screenshot $ARTEFACTS/inbox.png" || { echo "FAIL no screenshot"; fail=1; }
exit $fail
