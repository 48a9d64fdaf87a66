// Unit tests of hub_plugin.c's logic without a broker: the plugin source is included whole and the
// few broker functions it calls are replaced by recorders. The end-to-end behaviour is
// local_hub_test.sh's job; this one runs the parsers over hostile input (every truncation, every
// field) under the sanitizers.

#include "tools/local_hub/hub_plugin.c"

#include <ctype.h>
#include <unistd.h>

// --- broker stand-ins
// -------------------------------------------------------------------------------------

struct mosquitto {
  const char *id;
  const char *username;
};

static char g_last_log[2048];
static int g_log_lines;
static char g_published_topic[256];
static char g_published_payload[256];
static int g_published_qos = -1;
static int g_publish_count;

void mosquitto_log_printf(int level, const char *fmt, ...) {
  (void)level;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_last_log, sizeof(g_last_log), fmt, ap);
  va_end(ap);
  g_log_lines++;
}

const char *mosquitto_client_id(const struct mosquitto *client) { return client->id; }
const char *mosquitto_client_username(const struct mosquitto *client) { return client->username; }
const char *mosquitto_client_address(const struct mosquitto *client) {
  (void)client;
  return "127.0.0.1";
}
const char *mosquitto_strerror(int mosq_errno) {
  (void)mosq_errno;
  return "stub error";
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
                                  const void *payload, int qos, bool retain,
                                  mosquitto_property *properties) {
  (void)properties;
  if (clientid || retain) return MOSQ_ERR_INVAL;
  snprintf(g_published_topic, sizeof(g_published_topic), "%s", topic);
  snprintf(g_published_payload, sizeof(g_published_payload), "%.*s", payloadlen,
           (const char *)payload);
  g_published_qos = qos;
  g_publish_count++;
  return MOSQ_ERR_SUCCESS;
}

static int g_registered;
int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event,
                                MOSQ_FUNC_generic_callback cb_func, const void *event_data,
                                void *userdata) {
  (void)identifier, (void)event, (void)cb_func, (void)event_data, (void)userdata;
  g_registered++;
  return MOSQ_ERR_SUCCESS;
}
int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event,
                                  MOSQ_FUNC_generic_callback cb_func, const void *event_data) {
  (void)identifier, (void)event, (void)cb_func, (void)event_data;
  g_registered--;
  return MOSQ_ERR_SUCCESS;
}

// --- a tiny harness
// ----------------------------------------------------------------------------------------

static int g_passed, g_failed;
#define CHECK(cond, ...)                                      \
  do {                                                        \
    if (cond) {                                               \
      g_passed++;                                             \
    } else {                                                  \
      g_failed++;                                             \
      fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                           \
      fprintf(stderr, "\n");                                  \
    }                                                         \
  } while (0)

static char g_dir[PATH_MAX];
static char g_registry[PATH_MAX + 32];

static void write_file(const char *path, const char *text, const char *mode) {
  FILE *f = fopen(path, mode);
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

static void hex_encode(const unsigned char *in, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", in[i]);
  out[2 * n] = '\0';
}

static int auth(const char *client_id, const char *username, const char *password) {
  struct mosquitto client = {client_id, username};
  struct mosquitto_evt_basic_auth ev;
  memset(&ev, 0, sizeof(ev));
  ev.client = &client;
  ev.username = (char *)username;
  ev.password = (char *)password;
  return on_basic_auth(MOSQ_EVT_BASIC_AUTH, &ev, &g_hub);
}

static int acl(const char *username, int access, const char *topic) {
  struct mosquitto client = {"any", username};
  struct mosquitto_evt_acl_check ev;
  memset(&ev, 0, sizeof(ev));
  ev.client = &client;
  ev.access = access;
  ev.topic = topic;
  return on_acl_check(MOSQ_EVT_ACL_CHECK, &ev, &g_hub);
}

static int publish(const char *topic, const char *payload, size_t len) {
  struct mosquitto client = {"any", "any"};
  struct mosquitto_evt_message ev;
  memset(&ev, 0, sizeof(ev));
  ev.client = &client;
  ev.topic = (char *)topic;
  ev.payload = (void *)payload;
  ev.payloadlen = (uint32_t)len;
  g_publish_count = 0;
  return on_message(MOSQ_EVT_MESSAGE, &ev, &g_hub);
}

static void hmac_password(const char *secret_ascii, const EVP_MD *md, const char *suffix,
                          const char *username, char *out) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, secret_ascii, (int)strlen(secret_ascii), (const unsigned char *)username,
       strlen(username), mac, &len);
  hex_encode(mac, len, out);
  strcat(out, suffix);
}

// --- tests
// ---------------------------------------------------------------------------------------------------

static void test_username_parser(void) {
  struct {
    const char *username;
    bool ok;
  } cases[] = {
      {"ABCDEFGHIJdev01;21010406;a1B2c;1700000000", true},
      {"ABCDEFGHIJdev01;12010126;ZZZZZ;92233720368547758", true},
      {"A;1;abcde;0", true},
      {"ABCDEFGHIJdev01;21010406;a1B2c", false},
      {"ABCDEFGHIJdev01;21010406;a1B2c;1700000000;x", false},
      {";21010406;a1B2c;1700000000", false},
      {"ABCDEFGHIJdev01;;a1B2c;1700000000", false},
      {"ABCDEFGHIJdev01;2101x406;a1B2c;1700000000", false},
      {"ABCDEFGHIJdev01;21010406;a1B2;1700000000", false},
      {"ABCDEFGHIJdev01;21010406;a1B2cd;1700000000", false},
      {"ABCDEFGHIJdev01;21010406;a1_2c;1700000000", false},
      {"ABCDEFGHIJdev01;21010406;a1B2c;", false},
      {"ABCDEFGHIJdev01;21010406;a1B2c;-1", false},
      {"ABCDEFGHIJdev01;21010406;a1B2c;123456789012345678901", false},
      {"ABCDEFGHIJdev01;21010406;a1B2c;99999999999999999999", true},
      {"", false},
      {";;;", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct username u;
    char why[256];
    bool ok = parse_username(cases[i].username, &u, why, sizeof(why)) == NULL;
    CHECK(ok == cases[i].ok, "username '%s': %s", cases[i].username, ok ? "accepted" : why);
  }
  struct username u;
  char why[256];
  CHECK(!parse_username("ABCDEFGHIJdev01;21010406;a1B2c;1700000000", &u, why, sizeof(why)) &&
            strcmp(u.client_id, "ABCDEFGHIJdev01") == 0 && u.expiry == 1700000000 && !u.never,
        "fields of the worked example");
  CHECK(!parse_username("x;1;abcde;92233720368547758", &u, why, sizeof(why)) && u.never,
        "the C SDK's truncated LONG_MAX means never");
  CHECK(!parse_username("x;1;abcde;99999999999999999999", &u, why, sizeof(why)) && u.never &&
            u.expiry == UINT64_MAX,
        "an expiry past 2^64 saturates");
  // A client id longer than productId + deviceName can be.
  char long_name[200];
  memset(long_name, 'a', 100);
  strcpy(long_name + 100, ";1;abcde;1");
  CHECK(parse_username(long_name, &u, why, sizeof(why)) != NULL, "overlong client id");
}

static void test_decoders(void) {
  unsigned char buf[64];
  CHECK(base64_decode("MDEyMzQ1Njc4OWFiY2RlZg==", buf, sizeof(buf)) == 16 &&
            memcmp(buf, "0123456789abcdef", 16) == 0,
        "base64 with padding");
  CHECK(base64_decode("YWI=", buf, sizeof(buf)) == 2, "one pad");
  CHECK(base64_decode("YWJj", buf, sizeof(buf)) == 3, "no pad");
  CHECK(base64_decode("YWJ", buf, sizeof(buf)) == -1, "length not a multiple of 4");
  CHECK(base64_decode("YW!j", buf, sizeof(buf)) == -1, "bad character");
  CHECK(base64_decode("", buf, sizeof(buf)) == -1, "empty");
  CHECK(base64_decode("YWJjYWJj", buf, 5) == -1, "too long for the buffer");
  CHECK(hex_decode("00fFa9", 6, buf, sizeof(buf)) == 3 && buf[1] == 0xff && buf[2] == 0xa9, "hex");
  CHECK(hex_decode("abc", 3, buf, sizeof(buf)) == -1, "odd hex");
  CHECK(hex_decode("zz", 2, buf, sizeof(buf)) == -1, "non-hex");
  CHECK(hex_decode("aabb", 4, buf, 1) == -1, "hex too long for the buffer");
}

static void test_time_request_parser(void) {
  const char *yes[] = {
      "{\"type\": \"get\", \"resource\": [\"time\"]}",
      "{\"type\":\"get\",\"resource\":[\"time\"]}",
      " {\n\"resource\" : [ \"x\", 1, {\"a\": [true, null]}, \"time\" ] , \"type\":\"get\" } ",
      "{\"type\": \"get\", \"clientToken\": \"a\\\"b}\", \"resource\": [\"time\"], \"n\": -1.5e3}",
  };
  const char *no[] = {
      "",
      "{}",
      "[]",
      "null",
      "{\"type\": \"get\"}",
      "{\"type\": \"set\", \"resource\": [\"time\"]}",
      "{\"type\": \"get\", \"resource\": []}",
      "{\"type\": \"get\", \"resource\": [\"ntp\"]}",
      "{\"type\": \"get\", \"resource\": \"time\"}",
      "{\"type\": \"get\", \"resource\": [\"time\"]} x",
      "{\"type\": \"get\" \"resource\": [\"time\"]}",
      "{\"type\": \"get\", \"resource\": [\"time\",]}",
      "{type: \"get\", \"resource\": [\"time\"]}",
  };
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    CHECK(is_time_request(yes[i], strlen(yes[i])), "should be a time request: %s", yes[i]);
    // Every prefix that cuts before the closing brace is incomplete JSON: never a request, never a
    // read past the end (ASan).
    size_t complete = (size_t)(strrchr(yes[i], '}') - yes[i]) + 1;
    for (size_t n = 0; n < complete; n++) {
      char *copy = malloc(n ? n : 1);
      memcpy(copy, yes[i], n);
      CHECK(!is_time_request(copy, n), "prefix %zu of %s", n, yes[i]);
      free(copy);
    }
  }
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
    CHECK(!is_time_request(no[i], strlen(no[i])), "should not be a time request: %s", no[i]);
  }
  // Deep nesting is refused, not recursed into without bound.
  char deep[400] = "{\"type\":\"get\",\"resource\":[\"time\"],\"x\":";
  size_t at = strlen(deep);
  for (int i = 0; i < 100; i++) deep[at++] = '[';
  for (int i = 0; i < 100; i++) deep[at++] = ']';
  deep[at++] = '}';
  CHECK(!is_time_request(deep, at), "100 nested arrays");
}

static EVP_PKEY *g_device_key;

static void write_registry(void) {
  snprintf(g_registry, sizeof(g_registry), "%s/registry.txt", g_dir);
  // The device key for the CERT line, its public half in a PEM file beside the registry.
  g_device_key = EVP_RSA_gen(2048);
  char pub_path[PATH_MAX + 32];
  snprintf(pub_path, sizeof(pub_path), "%s/cdev.pub.pem", g_dir);
  FILE *f = fopen(pub_path, "w");
  if (!g_device_key || !f || PEM_write_PUBKEY(f, g_device_key) != 1) {
    fprintf(stderr, "cannot make the test key\n");
    exit(1);
  }
  fclose(f);
  write_file(g_registry,
             "# comment\n"
             "\n"
             "KEY ABCDEFGHIJ dev01 MDEyMzQ1Njc4OWFiY2RlZg==\n"
             "KEY ABCDEFGHIJ dev02 c2Vjb25kc2VjcmV0MDAwMA==\n"
             "CERT ABCDEFGHIJ cdev cdev.pub.pem\n"
             "  CONSOLE   console   plainpass  \n"
             // sha256("salt1" + "hashedpass")
             "CONSOLE ops "
             "sha256:salt1:",
             "w");
  unsigned char digest[32];
  EVP_Digest("salt1hashedpass", 15, digest, NULL, EVP_sha256(), NULL);
  char hex[65];
  hex_encode(digest, 32, hex);
  write_file(g_registry, hex, "a");
  write_file(g_registry,
             "\n"
             // Bad lines: each skipped with a warning, the rest still load.
             "KEY ABCDEFGHIJ\n"
             "KEY ABCDEFGHIJK toolongpid MDEyMzQ1Njc4OWFiY2RlZg==\n"
             "KEY ABCDEFGHIJ bad/name MDEyMzQ1Njc4OWFiY2RlZg==\n"
             "KEY ABCDEFGHIJ dev03 not-base64!\n"
             "KEY ABCDEFGHIJ dev01 c2Vjb25kc2VjcmV0MDAwMA==\n"
             "KEY ABCDEFGHI Jdev01 c2Vjb25kc2VjcmV0MDAwMA==\n"
             "CERT ABCDEFGHIJ cdev2 missing.pem\n"
             "CONSOLE a;b pw\n"
             "CONSOLE x sha256:nosalthash\n"
             "WHAT ever\n",
             "a");
}

static void test_registry_and_auth(void) {
  write_registry();
  char opt_key[] = "registry";
  struct mosquitto_opt opt = {opt_key, g_registry};
  void *userdata = NULL;
  CHECK(mosquitto_plugin_init(NULL, &userdata, &opt, 1) == MOSQ_ERR_SUCCESS, "init");
  CHECK(g_registered == 4, "4 callbacks registered, got %d", g_registered);
  CHECK(g_hub.registry.device_count == 3, "3 devices, got %zu", g_hub.registry.device_count);
  CHECK(g_hub.registry.console_count == 2, "2 consoles, got %zu", g_hub.registry.console_count);

  // The facts file's worked example: the plugin's HMAC matches it byte for byte.
  const struct device *d = find_device(&g_hub.registry, "ABCDEFGHIJdev01");
  unsigned char sig[20];
  hex_decode("108eac8bd80d3f25b6799504dcd094ba5bfb2f91", 40, sig, sizeof(sig));
  CHECK(d && verify_hmac(d, EVP_sha1(), "ABCDEFGHIJdev01;21010406;a1B2c;1700000000", sig, 20),
        "worked example");
  // ... but its expiry has passed, so the hub refuses it.
  CHECK(auth("ABCDEFGHIJdev01", "ABCDEFGHIJdev01;21010406;a1B2c;1700000000",
             "108eac8bd80d3f25b6799504dcd094ba5bfb2f91;hmacsha1") == MOSQ_ERR_AUTH &&
            strstr(g_last_log, "signature expired"),
        "worked example expired: %s", g_last_log);

  char user[128], pw[1200];
  snprintf(user, sizeof(user), "ABCDEFGHIJdev01;21010406;a1B2c;%lld", (long long)time(NULL) + 60);
  hmac_password("0123456789abcdef", EVP_sha1(), ";hmacsha1", user, pw);
  CHECK(auth("ABCDEFGHIJdev01", user, pw) == MOSQ_ERR_SUCCESS, "hmacsha1: %s", g_last_log);
  hmac_password("0123456789abcdef", EVP_sha256(), ";hmacsha256", user, pw);
  CHECK(auth("ABCDEFGHIJdev01", user, pw) == MOSQ_ERR_SUCCESS, "hmacsha256: %s", g_last_log);
  // Upper-case hex carries the same bytes.
  for (char *p = pw; *p != ';'; p++) *p = (char)toupper((unsigned char)*p);
  CHECK(auth("ABCDEFGHIJdev01", user, pw) == MOSQ_ERR_SUCCESS, "upper-case hex: %s", g_last_log);
  hmac_password("0123456789abcdef", EVP_sha1(), ";hmacsha256", user, pw);
  CHECK(auth("ABCDEFGHIJdev01", user, pw) == MOSQ_ERR_AUTH, "sha1 MAC labelled hmacsha256");
  hmac_password("secondsecret0000", EVP_sha1(), ";hmacsha1", user, pw);
  CHECK(auth("ABCDEFGHIJdev01", user, pw) == MOSQ_ERR_AUTH && strstr(g_last_log, "bad signature"),
        "dev02's secret for dev01: %s", g_last_log);
  CHECK(!strstr(g_last_log, "MDEyMzQ1") && !strstr(g_last_log, pw), "no secret in the log");
  hmac_password("0123456789abcdef", EVP_sha1(), ";md5", user, pw);
  CHECK(auth("ABCDEFGHIJdev01", user, pw) == MOSQ_ERR_AUTH &&
            strstr(g_last_log, "unknown signature method"),
        "unknown method: %s", g_last_log);
  CHECK(auth("ABCDEFGHIJdev01", user, NULL) == MOSQ_ERR_AUTH, "no password");
  CHECK(auth("ABCDEFGHIJdev01", NULL, "x") == MOSQ_ERR_AUTH, "no username");
  CHECK(auth(NULL, user, pw) == MOSQ_ERR_AUTH, "no client id");
  CHECK(auth("ABCDEFGHIJdev01", user, "zz;hmacsha1") == MOSQ_ERR_AUTH, "non-hex signature");
  CHECK(auth("ABCDEFGHIJdev01", user, ";hmacsha1") == MOSQ_ERR_AUTH, "empty signature");

  // The registry line for dev03 was bad, the duplicate dev01 line and the colliding
  // ABCDEFGHI+Jdev01 were skipped (the first dev01 secret still works, above).
  snprintf(user, sizeof(user), "ABCDEFGHIJdev03;21010406;a1B2c;%lld", (long long)time(NULL) + 60);
  hmac_password("0123456789abcdef", EVP_sha1(), ";hmacsha1", user, pw);
  CHECK(auth("ABCDEFGHIJdev03", user, pw) == MOSQ_ERR_AUTH && strstr(g_last_log, "unknown device"),
        "skipped line: %s", g_last_log);

  // CERT device.
  snprintf(user, sizeof(user), "ABCDEFGHIJcdev;21010406;Zz9Aa;92233720368547758");
  unsigned char rsa_sig[512];
  size_t rsa_len = sizeof(rsa_sig);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, g_device_key);
  EVP_DigestSign(ctx, rsa_sig, &rsa_len, (const unsigned char *)user, strlen(user));
  EVP_MD_CTX_free(ctx);
  hex_encode(rsa_sig, rsa_len, pw);
  size_t hex_len = strlen(pw);
  strcat(pw, ";rsa-sha256");
  CHECK(auth("ABCDEFGHIJcdev", user, pw) == MOSQ_ERR_SUCCESS, "rsa-sha256: %s", g_last_log);
  pw[0] = pw[0] == '0' ? '1' : '0';
  CHECK(auth("ABCDEFGHIJcdev", user, pw) == MOSQ_ERR_AUTH && strstr(g_last_log, "bad signature"),
        "tampered RSA signature");
  pw[hex_len] = '\0';
  strcat(pw, ";hmacsha1");
  CHECK(auth("ABCDEFGHIJcdev", user, pw) == MOSQ_ERR_AUTH &&
            strstr(g_last_log, "must sign with rsa-sha256"),
        "CERT device with an HMAC label");
  snprintf(user, sizeof(user), "ABCDEFGHIJdev01;21010406;a1B2c;92233720368547758");
  CHECK(auth("ABCDEFGHIJdev01", user, "00;rsa-sha256") == MOSQ_ERR_AUTH &&
            strstr(g_last_log, "must sign with hmacsha1"),
        "KEY device with an RSA label");

  // Consoles, plain and hashed.
  CHECK(auth("c1", "console", "plainpass") == MOSQ_ERR_SUCCESS, "plain console");
  CHECK(auth("c1", "console", "plainpas") == MOSQ_ERR_AUTH, "plain console, wrong");
  CHECK(auth("c1", "ops", "hashedpass") == MOSQ_ERR_SUCCESS, "hashed console");
  CHECK(auth("c1", "ops", "hashedpasz") == MOSQ_ERR_AUTH, "hashed console, wrong");
  CHECK(auth("c1", "nobody", "x") == MOSQ_ERR_AUTH && strstr(g_last_log, "not a device username"),
        "unknown console");

  // A device registered while the hub runs is picked up at the next CONNECT.
  write_file(g_registry, "KEY NEWPRODUCT dev9 MDEyMzQ1Njc4OWFiY2RlZg==\n", "a");
  snprintf(user, sizeof(user), "NEWPRODUCTdev9;1;abcde;92233720368547758");
  hmac_password("0123456789abcdef", EVP_sha1(), ";hmacsha1", user, pw);
  CHECK(auth("NEWPRODUCTdev9", user, pw) == MOSQ_ERR_SUCCESS, "device added at run time: %s",
        g_last_log);
  // A registry that disappears revokes everyone.
  char moved[PATH_MAX + 40];
  snprintf(moved, sizeof(moved), "%s.moved", g_registry);
  rename(g_registry, moved);
  CHECK(auth("NEWPRODUCTdev9", user, pw) == MOSQ_ERR_AUTH, "registry gone");
  rename(moved, g_registry);
  CHECK(auth("NEWPRODUCTdev9", user, pw) == MOSQ_ERR_SUCCESS, "registry back");
}

static void test_acl(void) {
  const char *dev = "ABCDEFGHIJdev01;21010406;a1B2c;92233720368547758";
  struct {
    int access;
    const char *topic;
    bool allowed;
  } cases[] = {
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/dev01/control", true},
      {MOSQ_ACL_READ, "ABCDEFGHIJ/dev01/control", true},
      {MOSQ_ACL_WRITE, "ABCDEFGHIJ/dev01/control", false},
      {MOSQ_ACL_WRITE, "ABCDEFGHIJ/dev01/event", true},
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/dev01/event", false},
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/dev01/data", true},
      {MOSQ_ACL_WRITE, "ABCDEFGHIJ/dev01/data", true},
      {MOSQ_ACL_WRITE, "ABCDEFGHIJ/dev02/data", false},
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/dev02/data", false},
      {MOSQ_ACL_READ, "ABCDEFGHIJ/dev02/data", false},
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/dev01/data/x", false},
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/dev01/#", false},
      {MOSQ_ACL_SUBSCRIBE, "ABCDEFGHIJ/+/data", false},
      {MOSQ_ACL_SUBSCRIBE, "#", false},
      {MOSQ_ACL_WRITE, "$shadow/operation/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$shadow/operation/result/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_WRITE, "$gateway/operation/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$gateway/operation/result/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$gateway/operation/ABCDEFGHIJ/dev01", false},
      {MOSQ_ACL_WRITE, "$gateway/operation/result/ABCDEFGHIJ/dev01", false},
      {MOSQ_ACL_WRITE, "$thing/up/property/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_WRITE, "$thing/up/event/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$thing/down/action/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$thing/up/property/ABCDEFGHIJ/dev01", false},
      {MOSQ_ACL_WRITE, "$thing/down/property/ABCDEFGHIJ/dev01", false},
      {MOSQ_ACL_WRITE, "$thing/up/property/ABCDEFGHIJ/dev02", false},
      {MOSQ_ACL_SUBSCRIBE, "$ota/update/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_WRITE, "$ota/report/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_WRITE, "$sys/operation/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_WRITE, "$sys/operation/ABCDEFGHIJ/dev02", false},
      {MOSQ_ACL_SUBSCRIBE, "$sys/operation/result/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$broadcast/rxd/ABCDEFGHIJ/dev01", true},
      {MOSQ_ACL_SUBSCRIBE, "$rrpc/rxd/ABCDEFGHIJ/dev01/+", true},
      {MOSQ_ACL_SUBSCRIBE, "$rrpc/rxd/ABCDEFGHIJ/dev01/123", true},
      {MOSQ_ACL_SUBSCRIBE, "$rrpc/rxd/ABCDEFGHIJ/dev01/#", false},
      {MOSQ_ACL_SUBSCRIBE, "$rrpc/rxd/ABCDEFGHIJ/dev01/", false},
      {MOSQ_ACL_SUBSCRIBE, "$rrpc/rxd/ABCDEFGHIJ/dev01/1/2", false},
      {MOSQ_ACL_READ, "$rrpc/rxd/ABCDEFGHIJ/dev01/77", true},
      {MOSQ_ACL_WRITE, "$rrpc/txd/ABCDEFGHIJ/dev01/77", true},
      {MOSQ_ACL_WRITE, "$rrpc/txd/ABCDEFGHIJ/dev01/+", false},
      {MOSQ_ACL_UNSUBSCRIBE, "anything/at/all", true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bool allowed = acl(dev, cases[i].access, cases[i].topic) == MOSQ_ERR_SUCCESS;
    CHECK(allowed == cases[i].allowed, "access %d to %s: %s", cases[i].access, cases[i].topic,
          allowed ? "allowed" : "denied");
  }
  CHECK(acl("console", MOSQ_ACL_WRITE, "ABCDEFGHIJ/dev01/control") == MOSQ_ERR_SUCCESS,
        "console publishes a downlink");
  CHECK(acl("ops", MOSQ_ACL_SUBSCRIBE, "#") == MOSQ_ERR_SUCCESS, "console subscribes to #");
  CHECK(acl("stranger", MOSQ_ACL_SUBSCRIBE, "#") == MOSQ_ERR_ACL_DENIED, "unknown account");
  CHECK(acl(NULL, MOSQ_ACL_WRITE, "x") == MOSQ_ERR_ACL_DENIED, "no username");
  CHECK(acl("NOPRODUCTdev01;1;abcde;1", MOSQ_ACL_WRITE, "NOPRODUCT/dev01/event") ==
            MOSQ_ERR_ACL_DENIED,
        "device no longer registered");
}

static void test_gateway_acl(void) {
  const char *gw = "ABCDEFGHIJdev01;21010406;a1B2c;92233720368547758";
  char path[PATH_MAX + 40];
  snprintf(path, sizeof(path), "%s", g_registry);
  char *slash = strrchr(path, '/');
  CHECK(slash != NULL, "registry path has a directory");
  if (slash == NULL) return;
  snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "gateway_online.txt");
  CHECK(acl(gw, MOSQ_ACL_WRITE, "SUBPROD001/sensor1/data") == MOSQ_ERR_ACL_DENIED,
        "no sub-device online yet");
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "write %s", path);
  if (f == NULL) return;
  fputs("ABCDEFGHIJ dev01 SUBPROD001 sensor1\nOTHERGW001 gw SUBPROD001 sensor2\n", f);
  fclose(f);
  CHECK(acl(gw, MOSQ_ACL_WRITE, "SUBPROD001/sensor1/data") == MOSQ_ERR_SUCCESS,
        "the gateway publishes for its online sub-device");
  CHECK(acl(gw, MOSQ_ACL_SUBSCRIBE, "SUBPROD001/sensor1/control") == MOSQ_ERR_SUCCESS,
        "and subscribes for it");
  CHECK(acl(gw, MOSQ_ACL_WRITE, "SUBPROD001/sensor1/control") == MOSQ_ERR_ACL_DENIED,
        "with the sub-device's permissions only");
  CHECK(acl(gw, MOSQ_ACL_WRITE, "SUBPROD001/sensor2/data") == MOSQ_ERR_ACL_DENIED,
        "not for another gateway's sub-device");
  unlink(path);
  CHECK(acl(gw, MOSQ_ACL_WRITE, "SUBPROD001/sensor1/data") == MOSQ_ERR_ACL_DENIED, "offline again");
}

static void test_time_service(void) {
  const char *request = "{\"type\": \"get\", \"resource\": [\"time\"]}";
  int64_t before = now_ms();
  publish("$sys/operation/ABCDEFGHIJ/dev01", request, strlen(request));
  int64_t after = now_ms();
  CHECK(g_publish_count == 1, "one reply");
  CHECK(strcmp(g_published_topic, "$sys/operation/result/ABCDEFGHIJ/dev01") == 0, "reply topic %s",
        g_published_topic);
  CHECK(g_published_qos == 0, "QoS0 reply");
  long long t, n1, n2;
  char tail;
  int fields = sscanf(g_published_payload,
                      "{\"type\":\"get\",\"time\":%lld,\"ntptime1\":%lld,\"ntptime2\":%lld%c", &t,
                      &n1, &n2, &tail);
  CHECK(fields == 4 && tail == '}', "reply format: %s", g_published_payload);
  CHECK(before <= n1 && n1 <= n2 && n2 <= after && t == n2 / 1000, "reply times: %s",
        g_published_payload);

  publish("$sys/operation/result/ABCDEFGHIJ/dev01", request, strlen(request));
  CHECK(g_publish_count == 0, "no reply to a result topic");
  publish("$sys/operation/ABCDEFGHIJ", request, strlen(request));
  CHECK(g_publish_count == 0, "no reply without a device name");
  publish("$sys/operation/ABCDEFGHIJ/dev01/x", request, strlen(request));
  CHECK(g_publish_count == 0, "no reply to a deeper topic");
  publish("ABCDEFGHIJ/dev01/data", request, strlen(request));
  CHECK(g_publish_count == 0, "no reply outside $sys");
  const char *ssh = "{\"type\":\"ssh\",\"switch\":1}";
  publish("$sys/operation/ABCDEFGHIJ/dev01", ssh, strlen(ssh));
  CHECK(g_publish_count == 0, "no reply to other types");
  publish("$sys/operation/ABCDEFGHIJ/dev01", NULL, 0);
  CHECK(g_publish_count == 0, "no reply to an empty payload");
}

int main(void) {
  const char *tmp = getenv("TEST_TMPDIR");
  if (tmp) {
    snprintf(g_dir, sizeof(g_dir), "%s", tmp);
  } else {
    snprintf(g_dir, sizeof(g_dir), "/tmp/hub_plugin_test.XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
  }
  CHECK(mosquitto_plugin_version(3, (const int[]){4, 5, 6}) == 5, "API v5");
  CHECK(mosquitto_plugin_version(1, (const int[]){4}) == -1, "v4 only: refused");
  {
    void *userdata = NULL;
    char key[] = "other", value[] = "x";
    struct mosquitto_opt opt = {key, value};
    CHECK(mosquitto_plugin_init(NULL, &userdata, &opt, 1) == MOSQ_ERR_INVAL &&
              strstr(g_last_log, "plugin_opt_registry"),
          "init without a registry option");
    char key2[] = "registry", missing[] = "/nonexistent/registry.txt";
    struct mosquitto_opt opt2 = {key2, missing};
    CHECK(mosquitto_plugin_init(NULL, &userdata, &opt2, 1) == MOSQ_ERR_INVAL,
          "init with a missing registry file");
  }
  test_username_parser();
  test_decoders();
  test_time_request_parser();
  test_registry_and_auth();
  test_acl();
  test_gateway_acl();
  test_time_service();
  CHECK(mosquitto_plugin_cleanup(&g_hub, NULL, 0) == MOSQ_ERR_SUCCESS && g_registered == 0,
        "cleanup unregisters");
  EVP_PKEY_free(g_device_key);
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
