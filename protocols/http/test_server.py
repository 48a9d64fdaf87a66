#!/usr/bin/env python3
"""HTTPS peer for http_client_test: python3's http.server behind ssl, on 127.0.0.1.

usage: test_server.py CERT KEY PORT_FILE   (binds port 0, writes the port it got to PORT_FILE)

  GET  /hello            200, Content-Length body "hello world"
  GET  /chunked          200, chunked body "chunk-one|chunk-two"
  GET  /file?size=N      N deterministic bytes (i % 251); honours "Range: bytes=A-" with 206
  GET  /cut?size=N&at=K  announces N bytes, sends K, closes the connection
  GET  /hang             sends nothing for 30 s
  POST /echo             200, body = request body; X-Got-Host = the Host header it saw
"""
import http.server
import os
import ssl
import sys
import threading
import urllib.parse


def file_bytes(size):
    return bytes(i % 251 for i in range(size))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("test_server: " + (fmt % args) + "\n")

    def send_body(self, code, body, extra=()):
        self.send_response(code)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/hello":
            self.send_body(200, b"hello world")
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"chunk-one|", b"chunk-two"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/file":
            data = file_bytes(int(query["size"]))
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[len("bytes="):-1])
                self.send_body(206, data[start:],
                               [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))])
            else:
                self.send_body(200, data)
        elif url.path == "/cut":
            data = file_bytes(int(query["size"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: int(query["at"])])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
        elif url.path == "/hang":
            threading.Event().wait(30)  # the client gives up long before; the thread is a daemon
            self.close_connection = True
        else:
            self.send_body(404, b"not found")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/echo":
            self.send_body(200, body, [("X-Got-Host", self.headers.get("Host", ""))])
        else:
            self.send_body(404, b"not found")


def main():
    cert, key, port_file = sys.argv[1:4]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
