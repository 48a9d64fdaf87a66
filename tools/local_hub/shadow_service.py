#!/usr/bin/env python3
"""The local hub's device shadow: a document store with versions and deltas, like IoT Hub's.

Runs beside mosquitto (local_hub.sh start starts it, stop ends it), connected as the console account: it
subscribes to every device's $shadow/operation/<pid>/<dn> and answers on $shadow/operation/result/<pid>/<dn>.

  get     -> {"type":"get","result":0,"timestamp":s,"clientToken":..,"payload":{"state":{"reported":{..},
             "desired":{..},"delta":{..}},"version":N,"timestamp":s}} (desired/delta only when not empty)
  update  -> "state": {"reported": {..}, "desired": {..}} merged key by key (a null value removes the key, a
             null "reported"/"desired" clears that part); "version": N > 0 must equal the document's version,
             otherwise result 5005 with payload {"version": <current>} and nothing changes; 0 skips the check.
             Each applied update adds 1 to the version. Reply: the same envelope with the whole state.
  delete  -> the document is emptied (version still grows).
  A change of "desired" that leaves a difference with "reported" pushes
             {"type":"delta","timestamp":s,"payload":{"state":{<desired keys that differ>},"version":N}}.

It also answers gateways on $gateway/operation/<pid>/<dn> (reply on $gateway/operation/result/<pid>/<dn>):
  bind    -> checks the signature (base64 of the hex HMAC-SHA1, keyed with the sub-device's secret text from the
             registry, of "<pid><dn>;<random>;<timestamp>") and records the binding; unbind removes it;
  online / offline -> accepted for bound sub-devices, and the online ones written to gateway_online.txt beside
             the registry, where the plugin lets the gateway publish and subscribe for them;
  describe_sub_devices -> the bound ones.
  Replies: {"type":..,"payload":{"devices":[{"product_id":..,"device_name":..,"result":R}]}}, R 0 on success,
  else this emulation's codes: 1 not bound / unknown sub-device, 2 bad signature.

And the data template's uplinks ($thing/up/property|event/<pid>/<dn>): a "report" is answered on
$thing/down/property/<pid>/<dn> with {"method":"report_reply","clientToken":..,"code":0,"status":"success"}, an
"event_post" on $thing/down/event/<pid>/<dn> with an "event_reply" alike. The console sends control and action
messages itself (console-pub to $thing/down/property|action/<pid>/<dn>) and reads the replies on $thing/up/...
The service keeps, per device, the reported values (each report's params merged key by key) and the last
"control" the console sent on $thing/down/property (it listens there too), until the device clears it:
  get_status    -> get_status_reply with "data": {"reported": {..}} plus "control": {..} while one is held;
  clear_control -> the held control is dropped; clear_control_reply;
  report_info   -> the params are kept (the last one per device) and printed; report_info_reply.
All with code 0 and status "success", as the C SDK's logs show the platform's replies.

The console changes a desired state the same way (local_hub.sh shadow-desire PID DN JSON publishes an update
with "state": {"desired": JSON}); the hub's answer goes to the device's result topic under a clientToken the
device does not know, which a device ignores. Documents live in memory only, for the hub's lifetime.
Result 5005 for a version conflict is this emulation's choice: the code IoT Hub uses is not documented.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import paho.mqtt.client as mqtt

VERSION_CONFLICT = 5005
BAD_REQUEST = 5001
NOT_BOUND = 1
BAD_SIGNATURE = 2


class Document:
    def __init__(self):
        self.reported = {}
        self.desired = {}
        self.version = 0
        self.timestamp = 0

    def delta(self):
        return {k: v for k, v in self.desired.items() if self.reported.get(k) != v}

    def state(self):
        state = {"reported": self.reported}
        if self.desired:
            state["desired"] = self.desired
        delta = self.delta()
        if delta:
            state["delta"] = delta
        return state

    def payload(self):
        return {"state": self.state(), "version": self.version, "timestamp": self.timestamp}


def merge(target, change):
    """Applies one part of an update ("reported" or "desired"); returns the new dict."""
    if change is None:
        return {}
    merged = dict(target)
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class ShadowService:
    def __init__(self, args):
        self.args = args
        self.documents = {}
        self.bindings = {}  # (gateway pid, dn) -> [(sub pid, sub dn)], in bind order
        self.online = set()  # (gateway pid, dn, sub pid, sub dn)
        self.things = {}  # (pid, dn) -> {"reported": {..}, "control": {..} or None, "info": {..} or None}
        self.client = mqtt.Client(client_id="hub-shadow-service", clean_session=True, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(args.username, args.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.subscribed = False

    def _on_connect(self, client, userdata, flags, rc):
        if rc != 0:
            print(f"shadow service: CONNECT refused ({mqtt.connack_string(rc)})", file=sys.stderr, flush=True)
            return
        # After every (re)connect: the subscription is not kept across a clean session.
        client.subscribe([("$shadow/operation/+/+", 0), ("$gateway/operation/+/+", 0),
                          ("$thing/up/property/+/+", 0), ("$thing/up/event/+/+", 0),
                          ("$thing/down/property/+/+", 0)])

    def _on_subscribe(self, client, userdata, mid, granted):
        if not self.subscribed and self.args.ready_file:
            with open(self.args.ready_file, "w") as f:
                f.write("ready\n")
        self.subscribed = True

    def _reply(self, pid, dn, body):
        self.client.publish(f"$shadow/operation/result/{pid}/{dn}", json.dumps(body, separators=(",", ":")), qos=0)

    def _secret(self, pid, dn):
        try:
            with open(self.args.registry) as f:
                for line in f:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) == 4 and fields[0] == "KEY" and fields[1] == pid and fields[2] == dn:
                        return fields[3]
        except OSError:
            pass
        return None

    def _gateway(self, pid, dn, request):
        kind = request.get("type")
        gateway = (pid, dn)
        bound = self.bindings.setdefault(gateway, [])
        if kind == "describe_sub_devices":
            devices = [{"product_id": p, "device_name": d} for p, d in bound]
            self._publish(f"$gateway/operation/result/{pid}/{dn}",
                          {"type": kind, "payload": {"devices": devices}})
            return kind, 0
        if kind not in ("bind", "unbind", "online", "offline"):
            return kind, None
        try:
            entry = request["payload"]["devices"][0]
            sub = (entry["product_id"], entry["device_name"])
        except (KeyError, IndexError, TypeError):
            return kind, None
        result = 0
        if kind == "bind":
            secret = self._secret(*sub)
            text = f"{sub[0]}{sub[1]};{entry.get('random')};{entry.get('timestamp')}"
            if secret is None or sub == gateway:
                result = NOT_BOUND
            else:
                digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()
                if base64.b64encode(digest.encode()).decode() != entry.get("signature"):
                    result = BAD_SIGNATURE
                elif sub not in bound:
                    bound.append(sub)
        elif sub not in bound:
            result = NOT_BOUND
        elif kind == "unbind":
            bound.remove(sub)
            self.online.discard(gateway + sub)
        elif kind == "online":
            self.online.add(gateway + sub)
        else:
            self.online.discard(gateway + sub)
        if kind in ("unbind", "online", "offline"):
            self._write_online()
        device = {"product_id": sub[0], "device_name": sub[1], "result": result}
        self._publish(f"$gateway/operation/result/{pid}/{dn}", {"type": kind, "payload": {"devices": [device]}})
        return kind, result

    def _write_online(self):
        """gateway_online.txt beside the registry: the plugin lets a gateway publish and subscribe for these."""
        if not self.args.registry:
            return
        path = os.path.join(os.path.dirname(os.path.abspath(self.args.registry)), "gateway_online.txt")
        with open(path + ".tmp", "w") as f:
            for entry in sorted(self.online):
                f.write(" ".join(entry) + "\n")
        os.replace(path + ".tmp", path)

    def _publish(self, topic, body):
        self.client.publish(topic, json.dumps(body, separators=(",", ":")), qos=0)

    def _thing(self, kind, pid, dn, request):
        method = request.get("method")
        replies = {("property", "report"): "report_reply", ("event", "event_post"): "event_reply",
                   ("property", "get_status"): "get_status_reply",
                   ("property", "clear_control"): "clear_control_reply",
                   ("property", "report_info"): "report_info_reply"}
        reply = replies.get((kind, method))
        if reply is None:
            return  # control_reply, action_reply and others are for the console to read
        thing = self.things.setdefault((pid, dn), {"reported": {}, "control": None, "info": None})
        params = request.get("params")
        body = {"method": reply, "clientToken": request.get("clientToken", ""), "code": 0, "status": "success"}
        note = ""
        if method == "report" and isinstance(params, dict):
            thing["reported"].update(params)
        elif method == "get_status":
            body["data"] = {"reported": thing["reported"]}
            if thing["control"]:
                body["data"]["control"] = thing["control"]
            if thing["control"]:
                note = f" with the held control {json.dumps(thing['control'], separators=(',', ':'), sort_keys=True)}"
        elif method == "clear_control":
            thing["control"] = None
        elif method == "report_info" and isinstance(params, dict):
            thing["info"] = params
            note = f" {json.dumps(params, separators=(',', ':'), sort_keys=True)}"
        self._publish(f"$thing/down/{kind}/{pid}/{dn}", body)
        print(f"template service: {pid}/{dn} {method} -> {reply}{note}", flush=True)

    def _console_control(self, pid, dn, message):
        """A control the console sent a device: held until the device sends clear_control."""
        if message.get("method") != "control" or not isinstance(message.get("params"), dict):
            return  # our own replies on the same topic, and anything else
        thing = self.things.setdefault((pid, dn), {"reported": {}, "control": None, "info": None})
        thing["control"] = message["params"]
        print(f"template service: {pid}/{dn} control held: "
              f"{json.dumps(message['params'], separators=(',', ':'), sort_keys=True)}", flush=True)

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) == 5 and parts[0] == "$thing" and parts[1] in ("up", "down"):
            try:
                request = json.loads(msg.payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return
            if not isinstance(request, dict):
                return
            if parts[1] == "up":
                self._thing(parts[2], parts[3], parts[4], request)
            elif parts[2] == "property":
                self._console_control(parts[3], parts[4], request)
            return
        if len(parts) != 4:
            return
        if parts[0] == "$gateway":
            try:
                request = json.loads(msg.payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return
            if isinstance(request, dict):
                kind, result = self._gateway(parts[2], parts[3], request)
                print(f"gateway service: {parts[2]}/{parts[3]} {kind} -> result {result}", flush=True)
            return
        pid, dn = parts[2], parts[3]
        try:
            request = json.loads(msg.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            print(f"shadow service: {msg.topic}: not JSON; ignored", file=sys.stderr, flush=True)
            return
        if not isinstance(request, dict):
            return
        kind = request.get("type")
        token = request.get("clientToken", "")
        now = int(time.time())
        doc = self.documents.setdefault((pid, dn), Document())
        reply = {"type": kind, "result": 0, "timestamp": now, "clientToken": token}
        if kind == "get":
            reply["payload"] = doc.payload()
        elif kind == "delete":
            doc.reported, doc.desired = {}, {}
            doc.version += 1
            doc.timestamp = now
            reply["payload"] = {"version": doc.version}
        elif kind == "update":
            state = request.get("state")
            version = request.get("version", 0)
            if not isinstance(state, dict) or not isinstance(version, int):
                reply["result"] = BAD_REQUEST
            elif version > 0 and version != doc.version:
                reply["result"] = VERSION_CONFLICT
                reply["payload"] = {"version": doc.version}
            else:
                if "reported" in state:
                    doc.reported = merge(doc.reported, state["reported"])
                if "desired" in state:
                    doc.desired = merge(doc.desired, state["desired"])
                doc.version += 1
                doc.timestamp = now
                reply["payload"] = doc.payload()
                delta = doc.delta()
                if "desired" in state and state["desired"] is not None and delta:
                    self._reply(pid, dn, {"type": "delta", "timestamp": now,
                                          "payload": {"state": delta, "version": doc.version}})
        else:
            return  # not a shadow operation
        self._reply(pid, dn, reply)
        print(f"shadow service: {pid}/{dn} {kind} -> result {reply['result']}, version {doc.version}", flush=True)

    def run(self):
        self.client.connect(self.args.host, self.args.port, keepalive=60)
        # Bounded by the hub's life: exit when the broker process we serve is gone.
        while self.args.hub_pid == 0 or os.path.exists(f"/proc/{self.args.hub_pid}"):
            rc = self.client.loop(timeout=0.2)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                time.sleep(0.2)
                try:
                    self.client.reconnect()
                except OSError:
                    pass
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--hub-pid", type=int, default=0, help="exit once this process (mosquitto) is gone")
    parser.add_argument("--ready-file", help="written once the subscription is granted")
    parser.add_argument("--registry", default="", help="the hub's registry.txt (sub-device secrets for bind)")
    args = parser.parse_args()
    with open(args.password_file) as f:
        args.password = f.read().strip()
    return ShadowService(args).run()


if __name__ == "__main__":
    sys.exit(main())
