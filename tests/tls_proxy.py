"""A TLS front for a plain server, for tests: accepts TLS on --port with --cert/--key and
relays each connection's bytes to --to (127.0.0.1:PORT). Python's standard library only."""

import argparse
import socket
import ssl
import threading


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, target):
    try:
        upstream = socket.create_connection(target)
    except OSError:
        conn.close()
        return
    threading.Thread(target=relay, args=(conn, upstream), daemon=True).start()
    relay(upstream, conn)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--to", type=int, required=True)
    args = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    listener = socket.create_server(("127.0.0.1", args.port))
    while True:
        raw, _ = listener.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            continue
        threading.Thread(target=serve, args=(conn, ("127.0.0.1", args.to)), daemon=True).start()


if __name__ == "__main__":
    main()
