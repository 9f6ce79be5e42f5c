# Seed-style Python echo server: recvfrom(1024), sendto back.
#   python3 py_echo.py HOST PORT
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, port))
print(f"listening on {host}:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
try:
    while True:
        data, addr = sock.recvfrom(1024)
        sock.sendto(data, addr)
except KeyboardInterrupt:
    pass
