#!/usr/bin/env bash
# Creates what the interop checks need on a running server and prints their config JSON:
# an owner and a renter with a room about the owner's item, and a second owner and renter
# with a room of their own (the "other room", which the first renter is not a member of).
#
# Usage: bash interop/setup-fixture.sh HTTP_BASE_1 [HTTP_BASE_2]
#   e.g. bash interop/setup-fixture.sh http://127.0.0.1:18081 http://127.0.0.1:18082
# The second base (default: the first) only sets ws2 in the config; every REST call goes to
# the first. Needs curl and python3.
set -euo pipefail

http1="${1:?usage: setup-fixture.sh HTTP_BASE_1 [HTTP_BASE_2]}"
http2="${2:-$http1}"
http1="${http1%/}"
http2="${http2%/}"

command -v curl >/dev/null || { echo "setup-fixture: curl is missing" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup-fixture: python3 is missing" >&2; exit 1; }

# Unique per run, so the fixture can be created any number of times against one database.
suffix="$(date +%s)-$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
password="interop-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

# request METHOD PATH EXPECTED_STATUS BODY [TOKEN] -> response body on stdout
request() {
  local method="$1" path="$2" expected="$3" body="$4" token="${5:-}"
  local args=(-sS -X "$method" -H 'content-type: application/json' -d "$body" -w '\n%{http_code}')
  [ -n "$token" ] && args+=(-H "authorization: Bearer $token")
  local out status
  out="$(curl "${args[@]}" "$http1$path")"
  status="${out##*$'\n'}"
  out="${out%$'\n'*}"
  if [ "$status" != "$expected" ]; then
    echo "setup-fixture: $method $path answered $status, expected $expected: $out" >&2
    exit 1
  fi
  printf '%s' "$out"
}

# json_field FIELD_PATH reads stdin's JSON, e.g. json_field user.id
json_field() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[key]
print(value)' "$1"
}

# user NAME -> "token id"
user() {
  local email="interop-$1-$suffix@example.com"
  local body
  body="$(python3 -c 'import json, sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2], "display_name": sys.argv[3]}))' \
    "$email" "$password" "Interop $1")"
  request POST /auth/signup 201 "$body" >/dev/null
  local login
  login="$(request POST /auth/login 200 "{\"email\":\"$email\",\"password\":\"$password\"}")"
  echo "$(json_field token <<<"$login") $(json_field user.id <<<"$login")"
}

# room OWNER_TOKEN RENTER_TOKEN -> room id
room() {
  local item
  item="$(request POST /rentals 201 '{"title":"Tent","category":"camping","price_per_day":10}' "$1" | json_field id)"
  request POST /chat/rooms 201 "{\"item_id\":$item}" "$2" | json_field id
}

read -r owner_token owner_id <<<"$(user owner)"
read -r renter_token renter_id <<<"$(user renter)"
room_id="$(room "$owner_token" "$renter_token")"

read -r other_owner_token _ <<<"$(user other-owner)"
read -r other_renter_token _ <<<"$(user other-renter)"
other_room_id="$(room "$other_owner_token" "$other_renter_token")"

python3 - "$http1" "$http2" "$renter_token" "$owner_token" "$renter_id" "$owner_id" "$room_id" "$other_room_id" <<'EOF'
import json, sys

http1, http2, renter_token, owner_token, renter_id, owner_id, room, other_room = sys.argv[1:]

def ws(base):
    scheme, rest = base.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/ws/chat"

print(json.dumps({
    "ws1": ws(http1),
    "ws2": ws(http2),
    "http1": http1,
    "renter_token": renter_token,
    "owner_token": owner_token,
    "renter_id": int(renter_id),
    "owner_id": int(owner_id),
    "room": int(room),
    "other_room": int(other_room),
}))
EOF
