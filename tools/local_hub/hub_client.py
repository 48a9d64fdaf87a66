#!/usr/bin/env python3
"""An independent MQTT client (Eclipse paho) for the local hub's tests: TCP, WebSocket and WebSocket over TLS.

Exit status: 0 when the action succeeded, 2 when the CONNECT was refused, 1 on any other failure.
Credentials are computed by the caller (with the openssl CLI), so this client knows nothing of IoT Hub's
signing rules.
"""

import argparse
import json
import sys
import time

import paho.mqtt.client as mqtt


class Session:
    def __init__(self, args):
        self.args = args
        self.connack = None
        self.subacks = {}
        self.pubacks = set()
        self.messages = []
        transport = "websockets" if args.transport in ("ws", "wss") else "tcp"
        self.client = mqtt.Client(client_id=args.client_id, clean_session=True,
                                  protocol=mqtt.MQTTv311, transport=transport)
        if transport == "websockets":
            self.client.ws_set_options(path="/")
        if args.transport == "wss":
            self.client.tls_set(ca_certs=args.ca)
        self.client.username_pw_set(args.username, args.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, granted: self.subacks.__setitem__(mid, granted)
        self.client.on_publish = lambda c, u, mid: self.pubacks.add(mid)
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, rc):
        self.connack = rc

    def _on_message(self, client, userdata, msg):
        self.messages.append((msg.topic, msg.payload.decode("utf-8", "replace")))
        print(f"message {msg.topic} {self.messages[-1][1]}", flush=True)

    def run_until(self, done, what):
        deadline = time.monotonic() + self.args.timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {self.args.timeout} s waiting for {what}")
            rc = self.client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS and self.connack is not None and self.connack == 0:
                raise ConnectionError(f"connection lost while waiting for {what}: {mqtt.error_string(rc)}")
            if rc != mqtt.MQTT_ERR_SUCCESS and self.connack is None:
                raise ConnectionError(f"connection closed before CONNACK: {mqtt.error_string(rc)}")

    def connect(self):
        self.client.connect(self.args.host, self.args.port, keepalive=60)
        self.run_until(lambda: self.connack is not None, "CONNACK")
        print(f"connack {self.connack} ({mqtt.connack_string(self.connack)})", flush=True)
        return self.connack == 0

    def subscribe(self, topic):
        rc, mid = self.client.subscribe(topic, qos=0)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"subscribe failed: {mqtt.error_string(rc)}")
        self.run_until(lambda: mid in self.subacks, f"SUBACK for {topic}")
        granted = self.subacks[mid][0]
        print(f"suback {topic} {granted}", flush=True)
        return granted

    def publish(self, topic, payload, qos):
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
        if qos > 0:
            self.run_until(lambda: info.mid in self.pubacks, f"PUBACK for {topic}")
        else:
            self.run_until(lambda: info.is_published(), f"the QoS0 publish to {topic} to leave")

    def close(self):
        self.client.disconnect()
        for _ in range(20):
            if self.client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break


def check_time_reply(payload, sent_ms, received_ms):
    reply = json.loads(payload)
    problems = []
    if reply.get("type") != "get":
        problems.append("type is not 'get'")
    for key in ("time", "ntptime1", "ntptime2"):
        if not isinstance(reply.get(key), int):
            problems.append(f"{key} is not an integer")
    if problems:
        return problems
    t, n1, n2 = reply["time"], reply["ntptime1"], reply["ntptime2"]
    # The hub runs on this machine: its clock is ours, so its stamps must lie within the round trip.
    slack_ms = 50
    if not sent_ms - slack_ms <= n1 <= n2 <= received_ms + slack_ms:
        problems.append(f"ntptime1 {n1} / ntptime2 {n2} outside the round trip [{sent_ms}, {received_ms}]")
    if t != n2 // 1000:
        problems.append(f"time {t} is not ntptime2 in seconds")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=("tcp", "ws", "wss"), default="tcp")
    parser.add_argument("--ca", help="CA file for wss")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("connect", help="connect and disconnect")
    p = sub.add_parser("time", help="the $sys/operation time request and reply")
    p.add_argument("--pid", required=True)
    p.add_argument("--dn", required=True)
    p = sub.add_parser("pubsub", help="subscribe to TOPIC, publish QoS1 to it, receive it back")
    p.add_argument("topic")
    p = sub.add_parser("subscribe", help="subscribe; succeed if the SUBACK grants (or, --expect-denied, refuses)")
    p.add_argument("topic")
    p.add_argument("--expect-denied", action="store_true")
    p = sub.add_parser("publish", help="publish QoS1 TOPIC MESSAGE pairs, each after the previous PUBACK")
    p.add_argument("pairs", nargs="+")
    p = sub.add_parser("recv", help="subscribe to the topics, write --ready-file, print COUNT messages")
    p.add_argument("--topic", action="append", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--ready-file")
    args = parser.parse_args()

    session = Session(args)
    try:
        if not session.connect():
            return 2
        if args.action == "time":
            result_topic = f"$sys/operation/result/{args.pid}/{args.dn}"
            if session.subscribe(result_topic) != 0:
                print("error: the result topic subscription was refused", file=sys.stderr)
                return 1
            sent_ms = int(time.time() * 1000)
            session.publish(f"$sys/operation/{args.pid}/{args.dn}", '{"type": "get", "resource": ["time"]}', 0)
            session.run_until(lambda: session.messages, "the time reply")
            received_ms = int(time.time() * 1000)
            topic, payload = session.messages[0]
            problems = [f"reply on {topic}"] if topic != result_topic else []
            problems += check_time_reply(payload, sent_ms, received_ms)
            if problems:
                print("error: bad time reply: " + "; ".join(problems), file=sys.stderr)
                return 1
        elif args.action == "pubsub":
            if session.subscribe(args.topic) != 0:
                print(f"error: subscription to {args.topic} refused", file=sys.stderr)
                return 1
            payload = '{"action": "publish_test", "count": "0"}'
            session.publish(args.topic, payload, 1)
            session.run_until(lambda: session.messages, "our own message back")
            if session.messages[0] != (args.topic, payload):
                print(f"error: got {session.messages[0]}", file=sys.stderr)
                return 1
        elif args.action == "subscribe":
            granted = session.subscribe(args.topic)
            if (granted == 0x80) != args.expect_denied:
                print(f"error: SUBACK {granted} for {args.topic}", file=sys.stderr)
                return 1
        elif args.action == "publish":
            if len(args.pairs) % 2:
                parser.error("publish takes TOPIC MESSAGE pairs")
            for topic, message in zip(args.pairs[::2], args.pairs[1::2]):
                session.publish(topic, message, 1)
        elif args.action == "recv":
            for topic in args.topic:
                if session.subscribe(topic) != 0:
                    print(f"error: subscription to {topic} refused", file=sys.stderr)
                    return 1
            if args.ready_file:
                with open(args.ready_file, "w") as f:
                    f.write("ready\n")
            session.run_until(lambda: len(session.messages) >= args.count, f"{args.count} message(s)")
        session.close()
        return 0
    except (TimeoutError, ConnectionError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
