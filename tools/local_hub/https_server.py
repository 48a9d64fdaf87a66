#!/usr/bin/env python3
"""The local hub's HTTPS side: Tencent IoT Hub's dynamic registration and a firmware server.

Started by `local_hub.sh https-start`; python3's http.server behind ssl with the hub's own server
certificate, on 127.0.0.1.

  POST /device/register   dynamic registration as Tencent documents it: headers X-TC-Algorithm
                          (hmacsha256 | hmacsha1), X-TC-Timestamp, X-TC-Nonce, X-TC-Signature =
                          Base64(HMAC(product secret, "POST\\n<host>\\n/device/register\\n\\n<alg>\\n
                          <timestamp>\\n<nonce>\\n<hex hash of body>")), body {"ProductId","DeviceName"}.
                          Checks the product (products.txt, written by `local_hub.sh register-product`),
                          the signature, a timestamp within 5 minutes and an unused nonce; registers a
                          KEY device in registry.txt (which hub_plugin.so re-reads, so it can connect at
                          once) and answers {"Response":{"Len":..,"Payload":..,"RequestId":..}}, Payload =
                          base64(AES-128-CBC(key = first 16 characters of the product secret, IV = sixteen
                          ASCII '0', PKCS#7) of {"encryptionType":2,"psk":"<base64 secret>"}), encrypted by
                          the openssl CLI. Refusals: {"Response":{"Error":{"Code","Message"},"RequestId"}}.
  GET /firmware/<name>    a file of the firmware dir; "Range: bytes=A-" or "bytes=A-B" gives 206 with
                          Content-Range, an unsatisfiable range 416.

Host names in the string to sign: the Host header without its port.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import threading
import time
import uuid

ID_PID = re.compile(r"^[A-Za-z0-9]{1,10}$")
ID_DN = re.compile(r"^[A-Za-z0-9._:@-]{1,48}$")
TIMESTAMP_SKEW_S = 300


def read_products(path):
    products = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) == 3 and fields[0] == "PRODUCT":
                    products[fields[1]] = fields[2]
    except FileNotFoundError:
        pass
    return products


def registered(registry, pid, dn):
    try:
        with open(registry) as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 3 and fields[0] in ("KEY", "CERT") and fields[1] == pid and fields[2] == dn:
                    return True
    except FileNotFoundError:
        pass
    return False


def aes_encrypt(plaintext, secret):
    key = secret[:16].encode().hex()
    iv = b"0000000000000000".hex()
    out = subprocess.run(["openssl", "enc", "-aes-128-cbc", "-base64", "-A", "-K", key, "-iv", iv],
                         input=plaintext.encode(), capture_output=True, check=True)
    return out.stdout.decode().strip()


class Hub:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.nonces = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub = None

    def log_message(self, fmt, *args):
        sys.stderr.write("https_server: %s %s\n" % (self.address_string(), fmt % args))

    def send_body(self, code, body, content_type="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def refuse(self, code, message):
        self.log_message("dynreg refused: %s: %s", code, message)
        reply = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}}
        self.send_body(200, json.dumps(reply).encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0") or "0")
        if length > 4096:
            self.send_body(413, b'{"error":"body too large"}')
            return
        body = self.rfile.read(length)
        if self.path != "/device/register":
            self.send_body(404, b'{"error":"not found"}')
            return
        self.register(body)

    def register(self, body):
        hub = self.hub
        algorithm = self.headers.get("X-TC-Algorithm", "")
        timestamp = self.headers.get("X-TC-Timestamp", "")
        nonce = self.headers.get("X-TC-Nonce", "")
        signature = self.headers.get("X-TC-Signature", "")
        if algorithm not in ("hmacsha256", "hmacsha1"):
            return self.refuse("InvalidParameterValue.AlgorithmInvalid", "X-TC-Algorithm must be hmacsha256 or hmacsha1")
        if not timestamp.isdigit() or not nonce.isdigit() or not signature:
            return self.refuse("MissingParameter", "X-TC-Timestamp, X-TC-Nonce and X-TC-Signature are required")
        try:
            request = json.loads(body)
            pid, dn = request["ProductId"], request["DeviceName"]
        except (ValueError, KeyError, TypeError):
            return self.refuse("InvalidParameterValue", 'body must be {"ProductId":..,"DeviceName":..}')
        if not isinstance(pid, str) or not isinstance(dn, str) or not ID_PID.match(pid) or not ID_DN.match(dn):
            return self.refuse("InvalidParameterValue", "ProductId or DeviceName malformed")
        secret = read_products(hub.args.products).get(pid)
        if secret is None:
            return self.refuse("ResourceNotFound.ProductNotExist", "product %s is not registered (local_hub.sh register-product)" % pid)
        host = self.headers.get("Host", "")
        host = re.sub(r":\d+$", "", host)
        digest = hashlib.sha1 if algorithm == "hmacsha1" else hashlib.sha256
        text = "POST\n%s\n/device/register\n\n%s\n%s\n%s\n%s" % (host, algorithm, timestamp, nonce, digest(body).hexdigest())
        expected = base64.b64encode(hmac.new(secret.encode(), text.encode(), digest).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            return self.refuse("InvalidParameterValue.SignatureFailure", "signature does not match (host %s)" % host)
        if abs(int(timestamp) - time.time()) > TIMESTAMP_SKEW_S:
            return self.refuse("InvalidParameterValue.TimestampExpired", "X-TC-Timestamp is more than 5 minutes off")
        with hub.lock:
            if (pid, nonce, timestamp) in hub.nonces:
                return self.refuse("InvalidParameterValue.NonceReused", "X-TC-Nonce was used already")
            hub.nonces.add((pid, nonce, timestamp))
            if registered(hub.args.registry, pid, dn):
                return self.refuse("FailedOperation.DeviceAlreadyExists", "device %s/%s is registered already" % (pid, dn))
            psk = base64.b64encode(secrets.token_bytes(16)).decode()
            with open(hub.args.registry, "a") as f:
                f.write("KEY %s %s %s\n" % (pid, dn, psk))
        payload = aes_encrypt(json.dumps({"encryptionType": 2, "psk": psk}), secret)
        reply = {"Response": {"Len": len(payload), "Payload": payload, "RequestId": str(uuid.uuid4())}}
        self.log_message("dynreg: registered KEY device %s/%s", pid, dn)
        self.send_body(200, json.dumps(reply).encode())

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        m = re.match(r"^/firmware/([A-Za-z0-9._-]+)$", self.path)
        if not m or not self.hub.args.firmware_dir:
            return self.send_body(404, b"not found", "text/plain")
        path = os.path.join(self.hub.args.firmware_dir, m.group(1))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return self.send_body(404, b"not found", "text/plain")
        rng = self.headers.get("Range")
        if not rng:
            return self.send_body(200, data, "application/octet-stream", [("Accept-Ranges", "bytes")])
        m = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
        if not m:
            return self.send_body(416, b"bad range", "text/plain", [("Content-Range", "bytes */%d" % len(data))])
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else len(data) - 1
        end = min(end, len(data) - 1)
        if start >= len(data) or start > end:
            return self.send_body(416, b"range not satisfiable", "text/plain", [("Content-Range", "bytes */%d" % len(data))])
        self.send_body(206, data[start:end + 1], "application/octet-stream",
                       [("Content-Range", "bytes %d-%d/%d" % (start, end, len(data))), ("Accept-Ranges", "bytes")])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--products", required=True)
    parser.add_argument("--firmware-dir", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", default="", help="written with the bound port once listening")
    args = parser.parse_args()
    Handler.hub = Hub(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    # The handshake runs in each request thread (first read), so one stalled client cannot block accept().
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % server.server_address[1])
        os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
