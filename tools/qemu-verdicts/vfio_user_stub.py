#!/usr/bin/env python3
"""The smallest vfio-user server QEMU's vfio-user-pci client gets past its handshake with.

Maintainer tool for make_map_notifier.py, never run by tests. A vfio-pci device needs a host
function, which the QEMU root lacks, so QEMU stops before VFIO attaches the device to its DMA
container. vfio-user-pci goes through the same container code (hw/vfio/listener.c) after a
socket handshake: answering VFIO_USER_VERSION (protocol 0.0, a few capabilities) is enough for
QEMU to register the container's memory listener, which is where an emulated SMMUv3 refuses the
MAP notifier. Every other request is answered with an empty success reply.

Usage: vfio_user_stub.py SOCKET_PATH  (serves one connection, gives up after 6 s without one)
"""
import json, os, socket, struct, sys

# vfio-user message header (hw/vfio-user/protocol.h VFIOUserHdr): id, command, size, flags, error.
HEADER = struct.Struct("<HHIII")
VERSION = 1   # VFIO_USER_VERSION
REPLY = 0x1   # VFIO_USER_REPLY

path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
server.settimeout(6)
try:
    conn, _ = server.accept()
except socket.timeout:
    sys.exit(0)
while True:
    header = conn.recv(HEADER.size, socket.MSG_WAITALL)
    if len(header) < HEADER.size:
        break
    msg_id, command, size, _, _ = HEADER.unpack(header)
    if size > HEADER.size:
        conn.recv(size - HEADER.size, socket.MSG_WAITALL)
    body = b""
    if command == VERSION:
        caps = {"capabilities": {"max_msg_fds": 8, "max_data_xfer_size": 1 << 20, "pgsizes": 4096, "max_dma_maps": 65535}}
        body = struct.pack("<HH", 0, 0) + json.dumps(caps).encode() + b"\0"
    conn.sendall(HEADER.pack(msg_id, command, HEADER.size + len(body), REPLY, 0) + body)
os.unlink(path)
