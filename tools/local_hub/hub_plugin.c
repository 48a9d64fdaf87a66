// A mosquitto 2.0 plugin (API v5) that makes a stock mosquitto behave like Tencent Cloud IoT Hub
// for a device:
//   - MOSQ_EVT_BASIC_AUTH: the username layout <clientId>;<sdkappid>;<connid>;<expiry> and the HMAC
//   or RSA
//     password, checked against a device registry file (see README.md beside this file for its
//     format);
//   - MOSQ_EVT_ACL_CHECK: the platform's default topic permissions for the device's own
//   productId/deviceName,
//     everything for "console" accounts (how a downlink is sent the way the cloud console would);
//   - MOSQ_EVT_MESSAGE: the $sys/operation time service.
// Plugin options: plugin_opt_registry <file> (required).
//
// Crypto comes from the system OpenSSL 3, the libcrypto mosquitto itself links: a second libcrypto
// (BoringSSL) in the broker process would clash.

#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PID_MAX 10
#define DN_MAX 48
#define CONNID_LEN 5
#define SECRET_MAX 64
// RSA-8192 signatures are 1024 bytes; nothing larger is a plausible device key.
#define SIG_MAX 1024
// The SDK's "never" expiry has 17 digits; anything past 20 digits cannot be a Unix time.
#define EXPIRY_DIGITS_MAX 20

enum device_kind { DEVICE_KEY, DEVICE_CERT };

struct device {
  enum device_kind kind;
  char pid[PID_MAX + 1];
  char dn[DN_MAX + 1];
  char client_id[PID_MAX + DN_MAX + 1];
  unsigned char secret[SECRET_MAX];
  size_t secret_len;
  EVP_PKEY *pubkey;
};

struct console {
  char *user;
  // Either the plain password, or (hashed) salt and the SHA-256 of salt||password.
  char *password;
  bool hashed;
  char *salt;
  unsigned char digest[32];
};

struct registry {
  struct device *devices;
  size_t device_count;
  struct console *consoles;
  size_t console_count;
};

struct hub {
  mosquitto_plugin_id_t *id;
  char *registry_path;
  struct registry registry;
  // The registry file is re-read when any of these change, so devices registered while the hub runs
  // can connect without a restart.
  bool stat_valid;
  dev_t st_dev;
  ino_t st_ino;
  off_t st_size;
  struct timespec st_mtim;
};

static struct hub g_hub;

static void hub_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hub_log(int level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  mosquitto_log_printf(level, "hub: %s", buf);
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers.

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool all_digits(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

static bool valid_pid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > PID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    if (!is_alnum(s[i])) return false;
  }
  return true;
}

// Device names: letters, digits and -_.:@ (no topic separators, wildcards or the username's ';').
static bool valid_dn(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > DN_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    if (!is_alnum(s[i]) && !strchr("-_.:@", s[i])) return false;
  }
  return true;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes n hex characters into out (capacity cap). Returns the byte count, or -1.
static long hex_decode(const char *s, size_t n, unsigned char *out, size_t cap) {
  if (n == 0 || n % 2 != 0 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n; i += 2) {
    int hi = hex_value(s[i]);
    int lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  return (long)(n / 2);
}

// Strict base64 (with padding). Returns the decoded length, or -1.
static long base64_decode(const char *s, unsigned char *out, size_t cap) {
  size_t n = strlen(s);
  if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap) return -1;
  int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
  if (len < 0) return -1;
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (s[n - 1] == '=') len--;
  if (s[n - 2] == '=') len--;
  return len;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Registry file.

static void registry_free(struct registry *r) {
  for (size_t i = 0; i < r->device_count; i++) {
    EVP_PKEY_free(r->devices[i].pubkey);
    OPENSSL_cleanse(r->devices[i].secret, sizeof(r->devices[i].secret));
  }
  free(r->devices);
  for (size_t i = 0; i < r->console_count; i++) {
    free(r->consoles[i].user);
    if (r->consoles[i].password) {
      OPENSSL_cleanse(r->consoles[i].password, strlen(r->consoles[i].password));
    }
    free(r->consoles[i].password);
    free(r->consoles[i].salt);
  }
  free(r->consoles);
  memset(r, 0, sizeof(*r));
}

static const struct device *find_device(const struct registry *r, const char *client_id) {
  for (size_t i = 0; i < r->device_count; i++) {
    if (strcmp(r->devices[i].client_id, client_id) == 0) return &r->devices[i];
  }
  return NULL;
}

static const struct console *find_console(const struct registry *r, const char *user) {
  for (size_t i = 0; i < r->console_count; i++) {
    if (strcmp(r->consoles[i].user, user) == 0) return &r->consoles[i];
  }
  return NULL;
}

// Loads a PEM public key, or the public key of a PEM certificate. Relative paths are taken from the
// registry file's directory.
static EVP_PKEY *load_public_key(const char *registry_path, const char *path) {
  char full[PATH_MAX];
  if (path[0] == '/') {
    snprintf(full, sizeof(full), "%s", path);
  } else {
    const char *slash = strrchr(registry_path, '/');
    int dir_len = slash ? (int)(slash - registry_path) : 1;
    snprintf(full, sizeof(full), "%.*s/%s", dir_len, slash ? registry_path : ".", path);
  }
  EVP_PKEY *key = NULL;
  BIO *bio = BIO_new_file(full, "r");
  if (bio) {
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!key && BIO_reset(bio) == 0) {
      X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
      if (cert) {
        key = X509_get_pubkey(cert);
        X509_free(cert);
      }
    }
    BIO_free(bio);
  }
  ERR_clear_error();
  if (!key) {
    hub_log(MOSQ_LOG_WARNING, "registry: cannot read a PEM public key or certificate from %s",
            full);
  }
  return key;
}

static bool parse_console_password(struct console *c, const char *password) {
  // Hashed form: sha256:<salt>:<64 hex digits of SHA-256(salt || password)>.
  if (strncmp(password, "sha256:", 7) == 0) {
    const char *salt = password + 7;
    const char *colon = strchr(salt, ':');
    if (!colon || colon == salt) return false;
    const char *hex = colon + 1;
    if (strlen(hex) != 64 || hex_decode(hex, 64, c->digest, sizeof(c->digest)) != 32) return false;
    c->salt = malloc((size_t)(colon - salt) + 1);
    if (!c->salt) return false;
    memcpy(c->salt, salt, (size_t)(colon - salt));
    c->salt[colon - salt] = '\0';
    c->hashed = true;
    return true;
  }
  c->password = dup_string(password);
  return c->password != NULL;
}

static bool registry_add_device(struct registry *r, const struct device *d) {
  struct device *grown = realloc(r->devices, (r->device_count + 1) * sizeof(*grown));
  if (!grown) return false;
  r->devices = grown;
  r->devices[r->device_count++] = *d;
  return true;
}

static bool registry_add_console(struct registry *r, const struct console *c) {
  struct console *grown = realloc(r->consoles, (r->console_count + 1) * sizeof(*grown));
  if (!grown) return false;
  r->consoles = grown;
  r->consoles[r->console_count++] = *c;
  return true;
}

// Parses one registry line (already split into fields). Problems are logged with the line number
// and never with the secret; the line is then skipped.
static void registry_parse_line(struct registry *r, const char *path, int line_no, char **f,
                                int n) {
  if (strcmp(f[0], "KEY") == 0 || strcmp(f[0], "CERT") == 0) {
    bool key = f[0][0] == 'K';
    if (n != 4) {
      hub_log(MOSQ_LOG_WARNING, "registry %s:%d: %s needs 3 fields: <productId> <deviceName> <%s>",
              path, line_no, f[0], key ? "base64 secret" : "cert-or-pubkey.pem");
      return;
    }
    if (!valid_pid(f[1]) || !valid_dn(f[2])) {
      hub_log(MOSQ_LOG_WARNING,
              "registry %s:%d: productId must be 1-%d of [A-Za-z0-9], deviceName 1-%d of "
              "[A-Za-z0-9-_.:@]",
              path, line_no, PID_MAX, DN_MAX);
      return;
    }
    struct device d;
    memset(&d, 0, sizeof(d));
    d.kind = key ? DEVICE_KEY : DEVICE_CERT;
    snprintf(d.pid, sizeof(d.pid), "%s", f[1]);
    snprintf(d.dn, sizeof(d.dn), "%s", f[2]);
    snprintf(d.client_id, sizeof(d.client_id), "%s%s", f[1], f[2]);
    if (find_device(r, d.client_id)) {
      // Client ids have no separator, so two devices could claim one id; the first line wins.
      hub_log(MOSQ_LOG_WARNING,
              "registry %s:%d: client id %s is already taken by an earlier line; skipped", path,
              line_no, d.client_id);
      return;
    }
    if (key) {
      long len = base64_decode(f[3], d.secret, sizeof(d.secret));
      if (len <= 0) {
        hub_log(MOSQ_LOG_WARNING,
                "registry %s:%d: the device secret is not valid base64 (at most %d bytes)", path,
                line_no, SECRET_MAX);
        return;
      }
      d.secret_len = (size_t)len;
    } else {
      d.pubkey = load_public_key(path, f[3]);
      if (!d.pubkey) return;
      if (EVP_PKEY_base_id(d.pubkey) != EVP_PKEY_RSA) {
        hub_log(MOSQ_LOG_WARNING, "registry %s:%d: %s is not an RSA key (rsa-sha256 needs one)",
                path, line_no, f[3]);
        EVP_PKEY_free(d.pubkey);
        return;
      }
    }
    if (!registry_add_device(r, &d)) {
      EVP_PKEY_free(d.pubkey);
      hub_log(MOSQ_LOG_ERR, "registry: out of memory");
    }
    return;
  }
  if (strcmp(f[0], "CONSOLE") == 0) {
    if (n != 3 || strchr(f[1], ';')) {
      hub_log(MOSQ_LOG_WARNING,
              "registry %s:%d: CONSOLE needs 2 fields: <user without ';'> <password>", path,
              line_no);
      return;
    }
    struct console c;
    memset(&c, 0, sizeof(c));
    c.user = dup_string(f[1]);
    if (!c.user || !parse_console_password(&c, f[2]) || !registry_add_console(r, &c)) {
      hub_log(MOSQ_LOG_WARNING,
              "registry %s:%d: bad CONSOLE password (plain, or sha256:<salt>:<64 hex>)", path,
              line_no);
      free(c.user);
      free(c.password);
      free(c.salt);
    }
    return;
  }
  hub_log(MOSQ_LOG_WARNING, "registry %s:%d: unknown entry type '%s' (KEY, CERT or CONSOLE)", path,
          line_no, f[0]);
}

static bool registry_load(const char *path, struct registry *out) {
  memset(out, 0, sizeof(*out));
  FILE *file = fopen(path, "r");
  if (!file) {
    hub_log(MOSQ_LOG_ERR, "registry: cannot open %s: %s", path, strerror(errno));
    return false;
  }
  char *line = NULL;
  size_t cap = 0;
  int line_no = 0;
  while (getline(&line, &cap, file) >= 0) {
    line_no++;
    char *fields[5];
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok && n < 5;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
      fields[n++] = tok;
    }
    if (n == 0 || fields[0][0] == '#') continue;
    registry_parse_line(out, path, line_no, fields, n);
  }
  if (line) OPENSSL_cleanse(line, cap);
  free(line);
  fclose(file);
  hub_log(MOSQ_LOG_INFO, "registry %s: %zu device(s), %zu console account(s)", path,
          out->device_count, out->console_count);
  return true;
}

// Re-reads the registry if the file changed since the last read.
static void registry_refresh(struct hub *hub) {
  struct stat st;
  if (stat(hub->registry_path, &st) != 0) {
    if (hub->stat_valid || hub->registry.device_count || hub->registry.console_count) {
      hub_log(MOSQ_LOG_ERR, "registry: %s is gone (%s): refusing every client until it is back",
              hub->registry_path, strerror(errno));
    }
    registry_free(&hub->registry);
    hub->stat_valid = false;
    return;
  }
  if (hub->stat_valid && st.st_dev == hub->st_dev && st.st_ino == hub->st_ino &&
      st.st_size == hub->st_size && st.st_mtim.tv_sec == hub->st_mtim.tv_sec &&
      st.st_mtim.tv_nsec == hub->st_mtim.tv_nsec) {
    return;
  }
  struct registry fresh;
  if (!registry_load(hub->registry_path, &fresh)) return;
  registry_free(&hub->registry);
  hub->registry = fresh;
  hub->stat_valid = true;
  hub->st_dev = st.st_dev;
  hub->st_ino = st.st_ino;
  hub->st_size = st.st_size;
  hub->st_mtim = st.st_mtim;
}

// ---------------------------------------------------------------------------------------------------------
// CONNECT: username and password.

struct username {
  char client_id[PID_MAX + DN_MAX + 1];
  uint64_t expiry;  // UINT64_MAX: past any real time (the SDK's "never")
  bool never;
};

// Returns NULL on success, or why the username is malformed.
static const char *parse_username(const char *u, struct username *out, char *why, size_t why_len) {
  const char *fields[4];
  size_t lens[4];
  int n = 0;
  const char *start = u;
  for (const char *p = u;; p++) {
    if (*p == ';' || *p == '\0') {
      if (n == 4) {
        n++;
        break;
      }
      fields[n] = start;
      lens[n] = (size_t)(p - start);
      n++;
      start = p + 1;
      if (*p == '\0') break;
    }
  }
  if (n != 4) {
    snprintf(
        why, why_len,
        "malformed username: expected 4 fields <clientId>;<sdkappid>;<connid>;<expiry>, got %s",
        n > 4    ? "more"
        : n == 3 ? "3"
        : n == 2 ? "2"
                 : "1");
    return why;
  }
  if (lens[0] == 0 || lens[0] >= sizeof(out->client_id)) {
    snprintf(why, why_len, "malformed username: the client id field must be 1-%d characters",
             PID_MAX + DN_MAX);
    return why;
  }
  memcpy(out->client_id, fields[0], lens[0]);
  out->client_id[lens[0]] = '\0';
  if (!all_digits(fields[1], lens[1])) {
    snprintf(why, why_len, "malformed username: sdkappid must be decimal digits (e.g. 12010126)");
    return why;
  }
  bool connid_ok = lens[2] == CONNID_LEN;
  for (size_t i = 0; connid_ok && i < lens[2]; i++) connid_ok = is_alnum(fields[2][i]);
  if (!connid_ok) {
    snprintf(why, why_len, "malformed username: connid must be %d characters of [a-zA-Z0-9]",
             CONNID_LEN);
    return why;
  }
  if (!all_digits(fields[3], lens[3]) || lens[3] > EXPIRY_DIGITS_MAX) {
    snprintf(why, why_len, "malformed username: expiry must be 1-%d decimal digits (Unix seconds)",
             EXPIRY_DIGITS_MAX);
    return why;
  }
  uint64_t expiry = 0;
  out->never = false;
  for (size_t i = 0; i < lens[3]; i++) {
    unsigned digit = (unsigned)(fields[3][i] - '0');
    if (expiry > (UINT64_MAX - digit) / 10) {
      expiry = UINT64_MAX;
      break;
    }
    expiry = expiry * 10 + digit;
  }
  out->expiry = expiry;
  // Anything past year 9999 is "never" in practice; the SDK's truncated LONG_MAX is one such value.
  out->never = expiry > 253402300799ULL;
  return NULL;
}

static bool verify_hmac(const struct device *d, const EVP_MD *md, const char *username,
                        const unsigned char *sig, size_t sig_len) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(md, d->secret, (int)d->secret_len, (const unsigned char *)username, strlen(username),
            mac, &mac_len)) {
    ERR_clear_error();
    return false;
  }
  return sig_len == mac_len && CRYPTO_memcmp(sig, mac, mac_len) == 0;
}

static bool verify_rsa(const struct device *d, const char *username, const unsigned char *sig,
                       size_t sig_len) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  bool ok =
      ctx && EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, d->pubkey) == 1 &&
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
      EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)username, strlen(username)) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

static bool console_password_ok(const struct console *c, const char *password) {
  if (!c->hashed) {
    size_t n = strlen(c->password);
    return strlen(password) == n && CRYPTO_memcmp(password, c->password, n) == 0;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
            EVP_DigestUpdate(ctx, c->salt, strlen(c->salt)) == 1 &&
            EVP_DigestUpdate(ctx, password, strlen(password)) == 1 &&
            EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok && digest_len == 32 && CRYPTO_memcmp(digest, c->digest, 32) == 0;
}

// Returns NULL if the client may connect, otherwise why not (for the log; never contains a secret).
static const char *check_connect(struct hub *hub, const char *client_id, const char *username,
                                 const char *password, char *why, size_t why_len) {
  if (!username || !*username)
    return "no username (IoT Hub needs <clientId>;<sdkappid>;<connid>;<expiry>)";
  if (!password) return "no password";
  if (!strchr(username, ';')) {
    const struct console *c = find_console(&hub->registry, username);
    if (!c) {
      snprintf(why, why_len,
               "malformed username '%.64s': not a device username and not a console account",
               username);
      return why;
    }
    if (!console_password_ok(c, password)) {
      snprintf(why, why_len, "bad password for console account '%.64s'", username);
      return why;
    }
    return NULL;
  }
  struct username u;
  if (parse_username(username, &u, why, why_len)) return why;
  if (!client_id || strcmp(client_id, u.client_id) != 0) {
    snprintf(why, why_len,
             "the username's client id '%s' differs from the MQTT client id '%.64s' (both must be "
             "<productId><deviceName>)",
             u.client_id, client_id ? client_id : "");
    return why;
  }
  const struct device *d = find_device(&hub->registry, u.client_id);
  if (!d) {
    snprintf(why, why_len,
             "unknown device: no registered productId/deviceName makes client id '%s'",
             u.client_id);
    return why;
  }
  time_t now = time(NULL);
  if (!u.never && u.expiry < (uint64_t)now) {
    snprintf(why, why_len, "signature expired: expiry %llu is before now (%lld)",
             (unsigned long long)u.expiry, (long long)now);
    return why;
  }
  const char *semicolon = strrchr(password, ';');
  if (!semicolon) {
    return "malformed password: expected <hex signature>;hmacsha1|hmacsha256|rsa-sha256";
  }
  const char *method = semicolon + 1;
  unsigned char sig[SIG_MAX];
  long sig_len = hex_decode(password, (size_t)(semicolon - password), sig, sizeof(sig));
  if (sig_len < 0) return "malformed password: the signature is not hex";
  bool ok;
  if (strcmp(method, "hmacsha1") == 0 || strcmp(method, "hmacsha256") == 0) {
    if (d->kind != DEVICE_KEY) {
      snprintf(why, why_len, "device %s/%s is a CERT device: it must sign with rsa-sha256, not %s",
               d->pid, d->dn, method);
      return why;
    }
    ok = verify_hmac(d, method[7] == '1' ? EVP_sha1() : EVP_sha256(), username, sig,
                     (size_t)sig_len);
  } else if (strcmp(method, "rsa-sha256") == 0) {
    if (d->kind != DEVICE_CERT) {
      snprintf(why, why_len,
               "device %s/%s is a KEY device: it must sign with hmacsha1 or hmacsha256", d->pid,
               d->dn);
      return why;
    }
    ok = verify_rsa(d, username, sig, (size_t)sig_len);
  } else {
    snprintf(why, why_len, "unknown signature method '%.16s' (hmacsha1, hmacsha256 or rsa-sha256)",
             method);
    return why;
  }
  if (!ok) {
    snprintf(why, why_len, "bad signature (%s) for device %s/%s", method, d->pid, d->dn);
    return why;
  }
  return NULL;
}

static int on_basic_auth(int event, void *event_data, void *userdata) {
  (void)event;
  struct hub *hub = userdata;
  struct mosquitto_evt_basic_auth *ed = event_data;
  registry_refresh(hub);
  const char *client_id = mosquitto_client_id(ed->client);
  const char *address = mosquitto_client_address(ed->client);
  char why[512];
  const char *refusal = check_connect(hub, client_id, ed->username, ed->password, why, sizeof(why));
  if (refusal) {
    hub_log(MOSQ_LOG_NOTICE, "refused client '%.64s' from %s: %s", client_id ? client_id : "",
            address ? address : "?", refusal);
    return MOSQ_ERR_AUTH;
  }
  hub_log(MOSQ_LOG_NOTICE, "accepted client '%.64s' from %s as %s", client_id ? client_id : "",
          address ? address : "?", strchr(ed->username, ';') ? "device" : "console");
  return MOSQ_ERR_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------
// ACL: the default topic permissions.

struct permission {
  const char *prefix;  // before /<pid>/<dn> (or, if empty, the topic starts with <pid>/<dn>)
  const char *suffix;  // after <pid>/<dn>; "/+" means one more level of any name
  bool subscribe;      // the device may subscribe to it (and so receive it)
  bool publish;
};

static const struct permission kPermissions[] = {
    {"", "/control", true, false},
    {"", "/event", false, true},
    {"", "/data", true, true},
    {"$shadow/operation/", "", false, true},
    {"$shadow/operation/result/", "", true, false},
    {"$ota/update/", "", true, false},
    {"$ota/report/", "", false, true},
    {"$sys/operation/", "", false, true},
    {"$sys/operation/result/", "", true, false},
    {"$broadcast/rxd/", "", true, false},
    {"$rrpc/rxd/", "/+", true, false},
    {"$rrpc/txd/", "/+", false, true},
    // Gateway products' sub-device management (answered by shadow_service.py); the real hub grants
    // these to gateways only, the local hub to every device.
    {"$gateway/operation/", "", false, true},
    {"$gateway/operation/result/", "", true, false},
    // IoT Explorer's data template (reports and events answered by shadow_service.py).
    {"$thing/up/property/", "", false, true},
    {"$thing/up/event/", "", false, true},
    {"$thing/up/action/", "", false, true},
    {"$thing/down/property/", "", true, false},
    {"$thing/down/event/", "", true, false},
    {"$thing/down/action/", "", true, false},
};

// Whether topic (a topic name, or a subscription filter if is_filter) is covered by the permission
// for this device. Wildcards in a filter are only allowed where the permission itself has one.
static bool permission_matches(const struct permission *perm, const struct device *d,
                               const char *topic, bool is_filter) {
  char base[160];
  int n = snprintf(base, sizeof(base), "%s%s/%s", perm->prefix, d->pid, d->dn);
  if (n < 0 || (size_t)n >= sizeof(base) || strncmp(topic, base, (size_t)n) != 0) return false;
  const char *rest = topic + n;
  if (strcmp(perm->suffix, "/+") != 0) return strcmp(rest, perm->suffix) == 0;
  if (rest[0] != '/' || rest[1] == '\0' || strchr(rest + 1, '/') || strchr(rest + 1, '#'))
    return false;
  if (strchr(rest + 1, '+')) return is_filter && strcmp(rest + 1, "+") == 0;
  return true;
}

// Gateways: while a gateway has a sub-device online, it may publish and subscribe for it with the
// sub-device's default permissions. shadow_service.py keeps "<gw pid> <gw dn> <sub pid> <sub dn>"
// lines in gateway_online.txt beside the registry; read only when the device's own permissions
// said no.
static bool gateway_allows(const struct hub *hub, const struct device *gw, const char *topic,
                           bool is_filter, bool want_publish) {
  char path[PATH_MAX];
  const char *slash = strrchr(hub->registry_path, '/');
  int n = slash ? snprintf(path, sizeof(path), "%.*s/gateway_online.txt",
                           (int)(slash - hub->registry_path), hub->registry_path)
                : snprintf(path, sizeof(path), "gateway_online.txt");
  if (n < 0 || (size_t)n >= sizeof(path)) return false;
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char line[256];
  bool allowed = false;
  while (!allowed && fgets(line, sizeof(line), f)) {
    char gw_pid[PID_MAX + 1], gw_dn[DN_MAX + 1];
    struct device sub;
    memset(&sub, 0, sizeof(sub));
    if (sscanf(line, "%10s %48s %10s %48s", gw_pid, gw_dn, sub.pid, sub.dn) != 4) continue;
    if (strcmp(gw_pid, gw->pid) != 0 || strcmp(gw_dn, gw->dn) != 0) continue;
    for (size_t i = 0; i < sizeof(kPermissions) / sizeof(kPermissions[0]); i++) {
      const struct permission *perm = &kPermissions[i];
      if (want_publish ? !perm->publish : !perm->subscribe) continue;
      if (permission_matches(perm, &sub, topic, is_filter)) {
        allowed = true;
        break;
      }
    }
  }
  fclose(f);
  return allowed;
}

static int on_acl_check(int event, void *event_data, void *userdata) {
  (void)event;
  struct hub *hub = userdata;
  struct mosquitto_evt_acl_check *ed = event_data;
  if (ed->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
  const char *username = mosquitto_client_username(ed->client);
  if (!username) return MOSQ_ERR_ACL_DENIED;
  const char *semicolon = strchr(username, ';');
  if (!semicolon) {
    return find_console(&hub->registry, username) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
  }
  char client_id[PID_MAX + DN_MAX + 1];
  size_t len = (size_t)(semicolon - username);
  if (len >= sizeof(client_id)) return MOSQ_ERR_ACL_DENIED;
  memcpy(client_id, username, len);
  client_id[len] = '\0';
  const struct device *d = find_device(&hub->registry, client_id);
  if (!d) return MOSQ_ERR_ACL_DENIED;
  bool is_filter = ed->access == MOSQ_ACL_SUBSCRIBE;
  bool want_publish = ed->access == MOSQ_ACL_WRITE;
  for (size_t i = 0; i < sizeof(kPermissions) / sizeof(kPermissions[0]); i++) {
    const struct permission *perm = &kPermissions[i];
    if (want_publish ? !perm->publish : !perm->subscribe) continue;
    if (permission_matches(perm, d, ed->topic, is_filter)) return MOSQ_ERR_SUCCESS;
  }
  if (gateway_allows(hub, d, ed->topic, is_filter, want_publish)) return MOSQ_ERR_SUCCESS;
  // Only attempts by the device itself are worth a line; READ checks happen for every fan-out.
  if (ed->access != MOSQ_ACL_READ) {
    hub_log(MOSQ_LOG_NOTICE,
            "denied %s of '%.128s' to device %s/%s (not in its default topic permissions)",
            want_publish ? "publish" : "subscribe", ed->topic, d->pid, d->dn);
  }
  return MOSQ_ERR_ACL_DENIED;
}

// ---------------------------------------------------------------------------------------------------------
// Time service: just enough JSON to read {"type": "get", "resource": ["time", ...]}.

struct json {
  const char *p;
  const char *end;
};

static void json_ws(struct json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

// Reads a string into out (truncated to cap-1, escapes kept undecoded except \" and \\). Returns
// false if the input is not a JSON string.
static bool json_string(struct json *j, char *out, size_t cap) {
  json_ws(j);
  if (j->p >= j->end || *j->p != '"') return false;
  j->p++;
  size_t n = 0;
  while (j->p < j->end && *j->p != '"') {
    char c = *j->p++;
    if (c == '\\') {
      if (j->p >= j->end) return false;
      c = *j->p++;
    }
    if (out && n + 1 < cap) out[n++] = c;
  }
  if (j->p >= j->end) return false;
  j->p++;
  if (out) out[n] = '\0';
  return true;
}

static bool json_skip_value(struct json *j, int depth) {
  json_ws(j);
  if (j->p >= j->end || depth > 32) return false;
  char c = *j->p;
  if (c == '"') return json_string(j, NULL, 0);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    json_ws(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      return true;
    }
    for (;;) {
      if (c == '{') {
        if (!json_string(j, NULL, 0)) return false;
        json_ws(j);
        if (j->p >= j->end || *j->p++ != ':') return false;
      }
      if (!json_skip_value(j, depth + 1)) return false;
      json_ws(j);
      if (j->p >= j->end) return false;
      if (*j->p == ',') {
        j->p++;
        continue;
      }
      if (*j->p++ == close) return true;
      return false;
    }
  }
  // Numbers, true, false, null: a run of their characters.
  const char *start = j->p;
  while (j->p < j->end && strchr("+-.0123456789eEtruefalsn", *j->p)) j->p++;
  return j->p > start;
}

static bool is_time_request(const char *payload, size_t len) {
  if (!payload || len == 0) return false;
  struct json j = {payload, payload + len};
  json_ws(&j);
  if (j.p >= j.end || *j.p++ != '{') return false;
  bool type_get = false;
  bool wants_time = false;
  json_ws(&j);
  if (j.p < j.end && *j.p == '}') return false;
  for (;;) {
    char key[32];
    if (!json_string(&j, key, sizeof(key))) return false;
    json_ws(&j);
    if (j.p >= j.end || *j.p++ != ':') return false;
    json_ws(&j);
    if (strcmp(key, "type") == 0 && j.p < j.end && *j.p == '"') {
      char value[16];
      if (!json_string(&j, value, sizeof(value))) return false;
      type_get = strcmp(value, "get") == 0;
    } else if (strcmp(key, "resource") == 0 && j.p < j.end && *j.p == '[') {
      j.p++;
      json_ws(&j);
      if (j.p < j.end && *j.p == ']') {
        j.p++;
      } else {
        for (;;) {
          json_ws(&j);
          if (j.p < j.end && *j.p == '"') {
            char value[16];
            if (!json_string(&j, value, sizeof(value))) return false;
            if (strcmp(value, "time") == 0) wants_time = true;
          } else if (!json_skip_value(&j, 1)) {
            return false;
          }
          json_ws(&j);
          if (j.p >= j.end) return false;
          char c = *j.p++;
          if (c == ']') break;
          if (c != ',') return false;
        }
      }
    } else if (!json_skip_value(&j, 1)) {
      return false;
    }
    json_ws(&j);
    if (j.p >= j.end) return false;
    char c = *j.p++;
    if (c == '}') break;
    if (c != ',') return false;
  }
  json_ws(&j);
  return j.p == j.end && type_get && wants_time;
}

static int on_message(int event, void *event_data, void *userdata) {
  (void)event;
  (void)userdata;
  struct mosquitto_evt_message *ed = event_data;
  int64_t received_ms = now_ms();
  static const char kPrefix[] = "$sys/operation/";
  if (strncmp(ed->topic, kPrefix, sizeof(kPrefix) - 1) != 0) return MOSQ_ERR_SUCCESS;
  const char *rest = ed->topic + sizeof(kPrefix) - 1;
  const char *slash = strchr(rest, '/');
  if (!slash || slash == rest || strchr(slash + 1, '/') || slash[1] == '\0' ||
      strncmp(rest, "result/", 7) == 0) {
    return MOSQ_ERR_SUCCESS;
  }
  if (!is_time_request(ed->payload, ed->payloadlen)) {
    hub_log(MOSQ_LOG_INFO, "%s: not a time request; no reply", ed->topic);
    return MOSQ_ERR_SUCCESS;
  }
  char reply_topic[200];
  snprintf(reply_topic, sizeof(reply_topic), "$sys/operation/result/%s", rest);
  char reply[160];
  int64_t sent_ms = now_ms();
  int n = snprintf(reply, sizeof(reply),
                   "{\"type\":\"get\",\"time\":%lld,\"ntptime1\":%lld,\"ntptime2\":%lld}",
                   (long long)(sent_ms / 1000), (long long)received_ms, (long long)sent_ms);
  // QoS0 to the topic's subscribers, as the platform answers.
  int rc = mosquitto_broker_publish_copy(NULL, reply_topic, n, reply, 0, false, NULL);
  if (rc != MOSQ_ERR_SUCCESS) {
    hub_log(MOSQ_LOG_WARNING, "time reply on %s failed: %s", reply_topic, mosquitto_strerror(rc));
  }
  return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *event_data, void *userdata) {
  (void)event;
  (void)event_data;
  struct hub *hub = userdata;
  hub->stat_valid = false;
  registry_refresh(hub);
  return MOSQ_ERR_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------
// Plugin entry points.

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
  for (int i = 0; i < supported_version_count; i++) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count) {
  struct hub *hub = &g_hub;
  memset(hub, 0, sizeof(*hub));
  hub->id = identifier;
  for (int i = 0; i < option_count; i++) {
    if (strcmp(options[i].key, "registry") == 0) {
      free(hub->registry_path);
      hub->registry_path = dup_string(options[i].value);
    }
  }
  if (!hub->registry_path) {
    hub_log(MOSQ_LOG_ERR, "missing 'plugin_opt_registry <file>' in the mosquitto config");
    return MOSQ_ERR_INVAL;
  }
  struct stat st;
  if (stat(hub->registry_path, &st) != 0) {
    hub_log(MOSQ_LOG_ERR, "cannot read the registry file %s: %s", hub->registry_path,
            strerror(errno));
  } else {
    registry_refresh(hub);
  }
  if (!hub->stat_valid) {
    free(hub->registry_path);
    hub->registry_path = NULL;
    return MOSQ_ERR_INVAL;
  }
  *userdata = hub;
  int rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, hub);
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, hub);
  }
  if (rc == MOSQ_ERR_SUCCESS)
    rc = mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, hub);
  if (rc == MOSQ_ERR_SUCCESS)
    rc = mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, on_reload, NULL, hub);
  if (rc != MOSQ_ERR_SUCCESS) {
    hub_log(MOSQ_LOG_ERR, "cannot register callbacks: %s", mosquitto_strerror(rc));
    return rc;
  }
  hub_log(MOSQ_LOG_NOTICE, "IoT Hub emulation ready (registry %s)", hub->registry_path);
  return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
  (void)options;
  (void)option_count;
  struct hub *hub = userdata;
  if (!hub) return MOSQ_ERR_SUCCESS;
  mosquitto_callback_unregister(hub->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
  mosquitto_callback_unregister(hub->id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
  mosquitto_callback_unregister(hub->id, MOSQ_EVT_MESSAGE, on_message, NULL);
  mosquitto_callback_unregister(hub->id, MOSQ_EVT_RELOAD, on_reload, NULL);
  registry_free(&hub->registry);
  free(hub->registry_path);
  hub->registry_path = NULL;
  return MOSQ_ERR_SUCCESS;
}
