# Seed-style Python sender: one sendto per stdin line, the newline removed.
#   python3 py_send.py HOST PORT < lines
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for line in sys.stdin:
    sock.sendto(line.rstrip("\n").encode(), (host, port))
