#!/usr/bin/env bash
# Smoke suite for udpcat's Windows build, run through the real udpcat.exe under wine on
# loopback, against Linux-side peers (tests/wine/peer.py, python3).
#
#   tests/wine/smoke.sh path/to/udpcat.exe          # or UDPCAT=path/to/udpcat.exe tests/wine/smoke.sh
#   UDPCAT_RUN= tests/wine/smoke.sh target/release/udpcat   # the same checks on the Linux binary
#
# UDPCAT_RUN is the command put before udpcat: `wine` by default for a *.exe, nothing
# otherwise; set it (even to empty) to choose. Under wine, when WINEPREFIX is not set, the
# suite runs scripts/wine-env itself into a temporary directory (fresh prefix, removed at the
# end); with WINEPREFIX set (eval "$(scripts/wine-env DIR)") it uses that prefix. Either way it
# keeps one wineserver running for the whole suite (`wineserver -p`, killed at the end): each
# wine start-up then costs tens of milliseconds instead of about 0.4 s.
#
# udpcat.exe needs bcryptprimitives.dll beside it on Debian 12's wine (scripts/wine-env builds
# it, $WINE_SHIM_DLL); the suite does not place it itself. If wine cannot start the exe (no
# shim, not a Windows program, wine missing) the suite stops at once with wine's own loader
# error and `0 passed, 1 failed`: never a skip.
#
# Each check runs udpcat and its peers, then asserts udpcat's stdout, stderr and exit status
# together (and what the peer saw); a failing check prints every command it ran and everything
# each one wrote, with bytes made visible (sed's `l`: \r shows as \r, each line ends in $).
# The last line is `N passed, N failed`; the exit status is 1 when any check failed.
#
# Line endings: compared byte for byte, no \r stripped. udpcat writes \n on every platform
# (SPEC: a text record is the payload then \n; Rust does no text-mode translation), so a \r
# on Windows is a bug this suite should show. SMOKE_STRIP_CR=1 strips every \r from udpcat's
# stdout and stderr before comparing, to see whether line endings are the only difference.
#
# No sleeps: a listener's port comes from its readiness line (`listening on 127.0.0.1:PORT`
# on stderr, read through a fifo as it is written), a peer's from its first stdout line.
# Every process runs under `timeout` (SMOKE_TIMEOUT seconds, default 30) so nothing hangs.
#
# Needs: bash, python3, coreutils; for wine: wine (Debian 12: package wine + wine64).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEER=$HERE/peer.py

UDPCAT=${1:-${UDPCAT:-}}
[ -n "$UDPCAT" ] || { echo "usage: tests/wine/smoke.sh path/to/udpcat.exe (or set UDPCAT)" >&2; exit 2; }
[ -f "$UDPCAT" ] || { echo "smoke: error: no such file: $UDPCAT" >&2; echo "0 passed, 1 failed"; exit 1; }
UDPCAT=$(cd "$(dirname "$UDPCAT")" && pwd)/$(basename "$UDPCAT")
if [ -z "${UDPCAT_RUN+set}" ]; then
    case $UDPCAT in *.exe | *.EXE) UDPCAT_RUN=wine ;; *) UDPCAT_RUN= ;; esac
fi
read -r -a RUN <<<"$UDPCAT_RUN"
TO=${SMOKE_TIMEOUT:-30}
STRIP_CR=${SMOKE_STRIP_CR:-0}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/udpcat-smoke.XXXXXX")
WINE=0
[[ " $UDPCAT_RUN " == *wine* ]] && WINE=1
declare -A PID=() FD=() DRAIN=() STREAM=() RC=()
passed=0
failed=0

now_ms() { date +%s%3N; }
T0=$(now_ms)

cleanup() {
    local name
    for name in "${!PID[@]}"; do kill "${PID[$name]}" 2>/dev/null; done
    for name in "${!DRAIN[@]}"; do kill "${DRAIN[$name]}" 2>/dev/null; done
    if [ -n "${WINEPREFIX-}" ] && [ "$WINE" = 1 ]; then
        timeout 30 wineserver -k >/dev/null 2>&1
        # Debian's wine names the prefix's server directory (socket and lock, recreated by
        # the next wine) in $WINEPREFIX/wineserver; with the server gone it is only litter.
        local sd
        sd=$(cat "$WINEPREFIX/wineserver" 2>/dev/null)
        [[ $sd =~ ^wine-[A-Za-z0-9]+$ ]] && rm -rf "${TMPDIR:-/tmp}/$sd"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- wine --------------------------------------------------------------------------------
if [ "$WINE" = 1 ]; then
    command -v "${RUN[0]}" >/dev/null || {
        echo "smoke: error: '${RUN[0]}' not found: install wine (scripts/wine-env does, as root; on Debian 12 the command is wine, not wine64)" >&2
        echo "0 passed, 1 failed"; exit 1
    }
    if [ -z "${WINEPREFIX-}" ]; then
        t=$(now_ms)
        env_out=$("$ROOT/scripts/wine-env" -q --no-shim "$WORK/wine") || {
            echo "smoke: error: scripts/wine-env failed" >&2; echo "0 passed, 1 failed"; exit 1
        }
        eval "$env_out"
        echo "smoke: fresh wine prefix $WINEPREFIX in $(( $(now_ms) - t )) ms"
    fi
    export WINEDEBUG=${WINEDEBUG:--all}
    export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml,winemenubuilder.exe=}
    timeout 30 wineserver -p >/dev/null 2>&1 # persistent until `wineserver -k` in cleanup
fi

NL=$'\n'
LINE="[^$NL]*" # the rest of a line (a bracket expression cannot say \n: it holds a real newline)

# --- plumbing ----------------------------------------------------------------------------
# expand CMD...: the full command line into CMD; `udpcat ARGS` runs udpcat under test (under
# wine or not) and `peer ARGS` runs peer.py, each under timeout. Background commands are then
# exec'ed directly, so PID is timeout's own (killing it stops what it runs).
expand() {
    case $1 in
    udpcat) shift; CMD=(timeout -k 5 "$TO" "${RUN[@]}" "$UDPCAT" "$@") ;;
    peer) shift; CMD=(timeout -k 5 "$TO" python3 -I -S "$PEER" --timeout "$((TO - 5))" "$@") ;;
    *) CMD=("$@") ;;
    esac
}

# spawn NAME out|err CMD...: start CMD in the background, stdin from /dev/null; the named
# stream goes through a fifo (await_line reads it as written), the other straight to a file.
spawn() {
    local name=$1 stream=$2 d=$WORK/$1 fd
    shift 2
    expand "$@"
    mkdir -p "$d"
    : >"$d/out"
    : >"$d/err"
    printf '%q ' "${CMD[@]}" >"$d/cmd"
    mkfifo "$d/fifo"
    if [ "$stream" = err ]; then
        "${CMD[@]}" >"$d/out" 2>"$d/fifo" </dev/null &
    else
        "${CMD[@]}" >"$d/fifo" 2>"$d/err" </dev/null &
    fi
    PID[$name]=$!
    exec {fd}<"$d/fifo" # returns once the child has opened the fifo for writing
    FD[$name]=$fd
    STREAM[$name]=$stream
    NAMES+=("$name")
}

# await_line NAME REGEX: read NAME's fifo line by line (each line kept in its file) until a
# line matches REGEX (then MATCH holds BASH_REMATCH), EOF, or SMOKE_TIMEOUT; the rest of the
# stream is then drained into the file in the background. Status 0 when the line came.
await_line() {
    local name=$1 re=$2 fd=${FD[$1]} file=$WORK/$1/${STREAM[$1]} line left found=1
    local deadline=$((SECONDS + TO))
    while :; do
        left=$((deadline - SECONDS))
        line=
        if [ "$left" -gt 0 ] && IFS= read -r -t "$left" -u "$fd" line; then
            printf '%s\n' "$line" >>"$file"
            if [[ ${line%$'\r'} =~ $re ]]; then
                MATCH=("${BASH_REMATCH[@]}")
                found=0
                break
            fi
            continue
        fi
        printf '%s' "$line" >>"$file" # a last line without \n, or a partial one at the timeout
        if [ $((deadline - SECONDS)) -le 0 ]; then
            NOTES+=("$name: no line matching /$re/ on its ${STREAM[$name]} within ${TO}s")
        else
            NOTES+=("$name: its ${STREAM[$name]} ended before a line matching /$re/")
        fi
        break
    done
    drain "$name"
    return $found
}

# drain NAME: copy the rest of NAME's fifo into its file in the background.
drain() {
    local name=$1 fd=${FD[$1]}
    cat <&"$fd" >>"$WORK/$name/${STREAM[$name]}" &
    DRAIN[$name]=$!
    exec {fd}<&-
    unset "FD[$name]"
}

# stop NAME: a process whose check has already failed (no readiness line) is not waited out.
stop() { [ -n "${PID[$1]-}" ] && kill "${PID[$1]}" 2>/dev/null; }

# finish NAME: wait for NAME (and the drain of its fifo); its status goes to RC[NAME].
finish() {
    local name=$1
    [ -z "${PID[$name]-}" ] && return
    [ -n "${FD[$name]-}" ] && drain "$name"
    wait "${PID[$name]}"
    RC[$name]=$?
    unset "PID[$name]"
    if [ -n "${DRAIN[$name]-}" ]; then
        wait "${DRAIN[$name]}"
        unset "DRAIN[$name]"
    fi
}

# run NAME INPUT CMD...: run CMD in the foreground with INPUT (printf %s) on stdin.
run() {
    local name=$1 input=$2 d=$WORK/$1
    shift 2
    expand "$@"
    mkdir -p "$d"
    printf '%q ' "${CMD[@]}" >"$d/cmd"
    printf '%s' "$input" | "${CMD[@]}" >"$d/out" 2>"$d/err"
    RC[$name]=$?
    NAMES+=("$name")
}

# The content of NAME's stdout or stderr as a string (trailing newlines kept).
content() {
    local s
    s=$(cat "$WORK/$1/$2" 2>/dev/null; printf x)
    s=${s%x}
    if [ "$STRIP_CR" = 1 ] && [[ $1 == udpcat* ]]; then s=${s//$'\r'/}; fi
    printf '%s' "$s"
}

# A string as an ERE matching exactly it.
re() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

begin() {
    CHECK=$1
    CHECK_T0=$(now_ms)
    NAMES=()
    NOTES=()
    FAILS=()
    RC=()
    rm -rf "${WORK:?}"/udpcat* "${WORK:?}"/peer*
}

# expect NAME status N | expect NAME stdout|stderr = STRING | expect NAME stdout|stderr ~ ERE
# (the ERE must match the whole stream; `.` and [^x] match newlines too).
expect() {
    local name=$1 what=$2 op=${3-} want=${4-} got
    if [ "$what" = status ]; then
        [ "${RC[$name]-none}" = "$op" ] || FAILS+=("$name: exit status ${RC[$name]-none}, want $op")
        return
    fi
    local file=out
    [ "$what" = stderr ] && file=err
    got=$(content "$name" "$file"; printf x)
    got=${got%x}
    case $op in
    =)
        local shown='(nothing)'
        [ -z "$want" ] || shown=$(printf '%s' "$want" | sed -n 'l 0' | tr '\n' ' ')
        [ "$got" = "$want" ] || FAILS+=("$name: $what is not exactly $shown")
        ;;
    '~') [[ $got =~ ^${want}$ ]] || FAILS+=("$name: $what does not match /${want//$NL/\\n}/ (\\n: a newline)") ;;
    *) FAILS+=("smoke.sh bug: expect $*") ;;
    esac
}

end() {
    local name
    if [ ${#FAILS[@]} -eq 0 ] && [ ${#NOTES[@]} -eq 0 ]; then
        passed=$((passed + 1))
        printf 'ok     %s (%d ms)\n' "$CHECK" $(($(now_ms) - CHECK_T0))
        return
    fi
    failed=$((failed + 1))
    printf 'FAILED %s (%d ms)\n' "$CHECK" $(($(now_ms) - CHECK_T0))
    for name in "${FAILS[@]}" "${NOTES[@]}"; do printf '  - %s\n' "$name"; done
    for name in "${NAMES[@]}"; do
        printf '  [%s] $ %s\n' "$name" "$(cat "$WORK/$name/cmd" 2>/dev/null)"
        printf '  [%s] exit status: %s\n' "$name" "${RC[$name]-none}"
        printf '  [%s] stdout:\n' "$name"
        sed -n 'l 0' "$WORK/$name/out" | sed 's/^/      /'
        printf '  [%s] stderr:\n' "$name"
        sed -n 'l 0' "$WORK/$name/err" | sed 's/^/      /'
    done
}

# listen_up NAME ARGS...: start `udpcat listen ARGS... 127.0.0.1:0`; PORT is its port.
# Status 1 (and the check fails) when no readiness line came.
listen_up() {
    local name=$1
    shift
    PORT=
    spawn "$name" err udpcat listen "$@" 127.0.0.1:0
    await_line "$name" '^listening on 127\.0\.0\.1:([0-9]+)$' || { stop "$name"; return 1; }
    PORT=${MATCH[1]}
    [ "$PORT" != 0 ] || { NOTES+=("$name: the readiness line shows port 0, not the real port"); return 1; }
}

# peer_up NAME MODE ARGS...: start peer.py in the background; PEER_PORT is its port.
peer_up() {
    local name=$1
    shift
    PEER_PORT=
    spawn "$name" out peer "$@"
    await_line "$name" '^([0-9]+)$' || { stop "$name"; return 1; }
    PEER_PORT=${MATCH[1]}
}

ready() { printf 'listening on 127.0.0.1:%s\n' "$1"; }
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z'
NUM='[0-9]+(\.[0-9]+)?'

# --- preflight: can wine start it at all? -------------------------------------------------
begin "preflight: udpcat --version starts (${UDPCAT_RUN:-native})"
# err+module keeps wine's loader errors (a missing DLL such as bcryptprimitives.dll), which
# WINEDEBUG=-all would hide, leaving only wine's bare exit status 53.
if [ "$WINE" = 1 ]; then
    run udpcat "" env WINEDEBUG=-all,err+module timeout -k 5 "$TO" "${RUN[@]}" "$UDPCAT" --version
else
    run udpcat "" udpcat --version
fi
expect udpcat status 0
expect udpcat stdout '~' "udpcat [0-9]+\\.[0-9]+\\.[0-9]+$LINE$NL"
expect udpcat stderr = ""
end
if [ "$failed" -gt 0 ]; then
    echo "smoke: error: ${UDPCAT_RUN:-the system} cannot start $UDPCAT; no further checks run." >&2
    if [ "$WINE" = 1 ]; then
        dir=$(dirname "$UDPCAT")
        [ -f "$dir/bcryptprimitives.dll" ] ||
            echo "smoke: hint: no bcryptprimitives.dll beside it, and Debian's wine 8 needs that shim: scripts/wine-env DIR builds it as DIR/bcryptprimitives.dll; copy it to $dir/" >&2
    fi
    echo "0 passed, 1 failed"
    exit 1
fi

# Start-up cost of one invocation, as the checks below pay it.
tms=()
expand udpcat --version
for _ in 1 2 3 4 5; do
    t=$(now_ms)
    "${CMD[@]}" >/dev/null 2>&1 || { echo "smoke: error: udpcat --version failed while timing it" >&2; break; }
    tms+=($(($(now_ms) - t)))
done
if [ ${#tms[@]} -eq 5 ]; then
    read -r -a tms <<<"$(printf '%s\n' "${tms[@]}" | sort -n | tr '\n' ' ')"
    echo "smoke: one udpcat --version through '${UDPCAT_RUN:-nothing}': median ${tms[2]} ms (min ${tms[0]}, max ${tms[4]})"
fi

# --- checks ------------------------------------------------------------------------------
begin "listen --count 2: readiness line with the real port, one record per datagram, exit 0"
if listen_up udpcat --count 2; then
    run peer "" peer send "$PORT" one $'two\n' # a payload ending in \n gets no second one
fi
finish udpcat
expect udpcat status 0
expect udpcat stdout = $'one\ntwo\n'
expect udpcat stderr = "$(ready "$PORT")"$'\n'
expect peer status 0
end

begin "send MESSAGE: the words, joined by spaces, are one datagram"
if peer_up peer recv 1; then
    run udpcat "" udpcat send "127.0.0.1:$PEER_PORT" hello world
fi
finish peer
expect udpcat status 0
expect udpcat stdout = ""
expect udpcat stderr = ""
expect peer status 0
expect peer stdout = "$PEER_PORT"$'\n'"b'hello world'"$'\n'
end

begin "send from stdin: one datagram per line, \\r\\n and \\n removed, empty line, last line without \\n"
if peer_up peer recv 4; then
    run udpcat $'a\nb\r\n\nlast' udpcat send "127.0.0.1:$PEER_PORT"
fi
finish peer
expect udpcat status 0
expect udpcat stdout = ""
expect udpcat stderr = ""
expect peer status 0
expect peer stdout = "$PEER_PORT"$'\n'"b'a'"$'\n'"b'b'"$'\n'"b''"$'\n'"b'last'"$'\n'
end

begin "listen --timeout 500ms without a datagram: exit 3, one error line"
listen_up udpcat --timeout 500ms
finish udpcat
expect udpcat status 3
expect udpcat stdout = ""
expect udpcat stderr '~' "$(re "$(ready "$PORT")")${NL}udpcat: error: ${LINE}timed out${LINE}${NL}"
end

begin "send --reply against an echo peer: prints the reply, exit 0"
if peer_up peer echo 1; then
    run udpcat "" udpcat send --reply "127.0.0.1:$PEER_PORT" ping
fi
finish peer
expect udpcat status 0
expect udpcat stdout = $'ping\n'
expect udpcat stderr = ""
expect peer stdout = "$PEER_PORT"$'\n'"b'ping'"$'\n'
end

begin "send --reply to a closed port: port unreachable (WSAECONNRESET on Windows) is exit 4"
run peer "" peer free-port
CLOSED=$(head -n1 "$WORK/peer/out")
run udpcat "" udpcat send --reply "127.0.0.1:$CLOSED" hello
expect peer status 0
expect udpcat status 4
expect udpcat stdout = ""
expect udpcat stderr '~' "udpcat: error: ${LINE}$(re "127.0.0.1:$CLOSED")${LINE}port unreachable${LINE}${NL}"
if [ "$WINE" = 1 ] && [ "${RC[udpcat]-}" = 3 ]; then
    NOTES+=("wine 8 (Debian 12) never reports ICMP port unreachable on a UDP recv (no WSAECONNRESET,
    no poll event: the recv just times out); it keeps it as the connected socket's SO_ERROR,
    WSAECONNREFUSED (10061). On real Windows recv fails at once with WSAECONNRESET (10054).
    A port that, when the reply wait times out, checks SO_ERROR (socket.take_error()) before
    calling it a timeout passes here and loses nothing on Windows.")
fi
end

begin "listen -f json: one object per datagram, text or base64"
if listen_up udpcat -f json --count 2; then
    if peer_up peer send "$PORT" hi hex:ff00; then finish peer; fi
fi
finish udpcat
expect udpcat status 0
from=$(re "127.0.0.1:${PEER_PORT:-?}")
to=$(re "127.0.0.1:$PORT")
expect udpcat stdout '~' "\{\"ts\":\"$TS\",\"from\":\"$from\",\"to\":\"$to\",\"len\":2,\"text\":\"hi\"\}
\{\"ts\":\"$TS\",\"from\":\"$from\",\"to\":\"$to\",\"len\":2,\"base64\":\"/wA=\"\}
"
expect udpcat stderr = "$(ready "$PORT")"$'\n'
expect peer status 0
end

begin "listen -f hex: lowercase hex, one line per datagram, the empty datagram too"
if listen_up udpcat -f hex --count 3; then
    run peer "" peer send "$PORT" hi hex:00ff0a hex:
fi
finish udpcat
expect udpcat status 0
expect udpcat stdout = $'6869\n00ff0a\n\n'
expect udpcat stderr = "$(ready "$PORT")"$'\n'
expect peer status 0
end

begin "listen --echo: each datagram goes back to its sender and is printed"
if listen_up udpcat --echo --count 1; then
    run peer "" peer ask "$PORT" marco
fi
finish udpcat
expect udpcat status 0
expect udpcat stdout = $'marco\n'
expect udpcat stderr = "$(ready "$PORT")"$'\n'
expect peer status 0
expect peer stdout '~' "[0-9]+
b'marco'
"
end

begin "listen --exec: the command's output is the reply (cmd /C on Windows)"
if listen_up udpcat --exec "echo pong" --count 1 --stats; then
    run peer "" peer ask "$PORT" ping
fi
finish udpcat
expect udpcat status 0
expect udpcat stdout = $'ping\n'
expect udpcat stderr '~' "$(re "$(ready "$PORT")")"'
udpcat: received 1 datagram, 4 bytes in .*; 1 command run, 0 failed, 0 timed out
'
expect peer status 0
expect peer stdout '~' "[0-9]+
b'pong(\\\\r)?\\\\n'
"
end

begin "listen --forward: relays to an echo peer and back, both directions printed"
if peer_up peer echo 1; then
    if listen_up udpcat --forward "127.0.0.1:$PEER_PORT" --count 1; then
        run client "" peer ask "$PORT" relay-me
    fi
    finish udpcat
fi
finish peer
expect udpcat status 0
expect udpcat stdout = $'relay-me\nrelay-me\n'
expect client status 0
expect client stdout '~' "[0-9]+
b'relay-me'
"
end

begin "unix: addresses: a usage error saying the system has none (Windows), else they work"
run udpcat "" udpcat send "unix:/nonexistent/udpcat-smoke.sock" hi
if [ "${UDPCAT_RUN:-}" = "" ]; then
    expect udpcat status 1
else
    expect udpcat status 2
    expect udpcat stderr '~' "udpcat: error: address 'unix:/nonexistent/udpcat-smoke.sock' is a Unix socket, and Windows has no Unix datagram sockets
"
fi
end

begin "listen --stats: the summary line on stderr at exit"
if listen_up udpcat --stats --count 2; then
    run peer "" peer send "$PORT" abc de
fi
finish udpcat
expect udpcat status 0
expect udpcat stdout = $'abc\nde\n'
expect udpcat stderr '~' "$(re "$(ready "$PORT")")"'
udpcat: received 2 datagrams, 5 bytes in '"$NUM"'s '"$LINE$NUM"' datagrams/s'"$LINE"'; 0 refused by --allow; ([0-9]+|unknown) dropped by the kernel
'
expect peer status 0
end

begin "send --stats: the summary line on stderr"
if peer_up peer recv 2; then
    run udpcat $'abc\nde\n' udpcat send --stats "127.0.0.1:$PEER_PORT"
fi
finish peer
expect udpcat status 0
expect udpcat stdout = ""
expect udpcat stderr '~' 'udpcat: sent 2 datagrams, 5 bytes in '"$NUM"'s; 0 replies
'
expect peer stdout = "$PEER_PORT"$'\n'"b'abc'"$'\n'"b'de'"$'\n'
end

begin "send --reply --stats against udpcat listen --echo: replies and round trip on stderr"
if listen_up udpcat-echo --echo --count 2; then
    run udpcat $'one\ntwo\n' udpcat send --reply --stats "127.0.0.1:$PORT"
fi
finish udpcat-echo
expect udpcat status 0
expect udpcat stdout = $'one\ntwo\n'
expect udpcat stderr '~' 'udpcat: sent 2 datagrams, 6 bytes in '"$NUM"'s; 2 replies, 0% loss; round trip min/avg/max/mdev '"$NUM/$NUM/$NUM/$NUM"' ms, p50/p90/p99 '"$NUM/$NUM/$NUM"' ms
'
expect udpcat-echo status 0
expect udpcat-echo stdout = $'one\ntwo\n'
expect udpcat-echo stderr = "$(ready "$PORT")"$'\n'
end

begin "listen -f pcap, then send --replay of that capture: the same datagrams again"
if listen_up udpcat -f pcap --count 2; then
    run peer "" peer send "$PORT" hi hex:00ff
fi
finish udpcat
cp "$WORK/udpcat/out" "$WORK/capture.pcap"
if peer_up peer-sink recv 2; then
    run udpcat-replay "" udpcat send --replay "$WORK/capture.pcap" "127.0.0.1:$PEER_PORT"
fi
finish peer-sink
expect udpcat status 0
expect udpcat stderr = "$(ready "$PORT")"$'\n'
expect udpcat-replay status 0
expect udpcat-replay stdout = ""
expect udpcat-replay stderr = ""
expect peer-sink stdout = "$PEER_PORT"$'\n'"b'hi'"$'\n'"b'\\x00\\xff'"$'\n'
end

begin "listen -f dump: a header line, hexdump -C lines and a blank line per datagram"
if listen_up udpcat -f dump --count 1; then
    run peer "" peer send "$PORT" hello
fi
finish udpcat
expect udpcat status 0
expect udpcat stdout '~' "$TS 127\\.0\\.0\\.1:[0-9]+ > 127\\.0\\.0\\.1:$PORT len 5
00000000  68 65 6c 6c 6f {36}\\|hello\\|

"
expect udpcat stderr = "$(ready "$PORT")"$'\n'
end

echo "smoke: whole suite $(( $(now_ms) - T0 )) ms"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
