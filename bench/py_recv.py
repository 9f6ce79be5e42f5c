# Seed-style Python receiver: recvfrom(1024) + print, default socket buffer.
#   python3 py_recv.py HOST PORT [COUNT]
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 0

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, port))
print(f"listening on {host}:{sock.getsockname()[1]}", file=sys.stderr, flush=True)

received = 0
try:
    while True:
        data, addr = sock.recvfrom(1024)
        print(data.decode())
        received += 1
        if received == count:
            break
except KeyboardInterrupt:
    pass
