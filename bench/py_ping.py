# Seed-style Python request/response client: for each stdin line, sendto, recvfrom(1024), print.
#   python3 py_ping.py HOST PORT < lines
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
missing = 0
for line in sys.stdin:
    sock.sendto(line.rstrip("\n").encode(), (host, port))
    try:
        data, addr = sock.recvfrom(1024)
    except socket.timeout:
        missing += 1
        continue
    print(data.decode())
sys.exit(3 if missing else 0)
