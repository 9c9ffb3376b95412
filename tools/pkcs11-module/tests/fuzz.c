/* Fuzz target of keyserver-pkcs11: every parser of input the module does not control, in one libFuzzer entry point.
 * The first byte picks the parser, the rest is its input:
 *   0 keys     the body of GET /api/keys (a hostile Keyserver or proxy), then every mechanism planned against each key
 *   1 cert     the rest as a DER certificate inside an otherwise well-formed key list (the certificate parser)
 *   2 config   a KEYSERVER_PKCS11_CONFIG file
 *   3 env      the environment: NAME=VALUE lines given to ks_config_load as its getenv (URL checks included)
 *   4 cache    ksctl's token cache file
 *   5 token    a token endpoint's answer (byte 1 picks the HTTP status)
 *   6 sign     a sign order's answer (byte 1 picks the key: P-256, RSA, Ed25519), checked against its certificate
 *   7 problem  a refusal's problem+json (byte 1 picks the HTTP status), the hex decoder and the problem-code table
 * Built with clang -fsanitize=fuzzer,address,undefined (`make fuzz` when clang is there), or with gcc and the
 * mutation driver tests/fuzz-driver.c under AddressSanitizer and UndefinedBehaviorSanitizer (`make fuzz-check`, part of
 * `make test`, and `make fuzz`). Seeds: tests/fuzz-corpus. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../src/ks.h"

/* RFC 6750 §2.1 b64token, written independently of ks_token_usable: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
 * *"=", at most 8192 characters. A token the module takes must be one (it goes into an HTTP header as it is). */
static int b64token(const char *t) {
  size_t body = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
  size_t pad = strspn(t + body, "=");
  return body > 0 && t[body + pad] == 0 && body + pad <= 8192;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Self-signed certificates of the sign target's keys (their private keys made tests/fuzz-corpus/6-*). */
#include "fuzz-certs.inc"

static struct ks_keylist g_sign_keys;
static void free_sign_keys(void) { ks_keys_free(&g_sign_keys); }

static char *json_escape(const char *s) {
  char *o = malloc(2 * strlen(s) + 1), *q = o;
  if (!o) return NULL;
  for (; *s; s++) {
    if (*s == '\n') *q++ = '\\', *q++ = 'n';
    else *q++ = *s;
  }
  *q = 0;
  return o;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  static int ready;
  if (ready) return 0;
  ready = 1;
  /* Every log line is formatted and sanitised (a hostile answer's text goes through ks_log), written nowhere. */
  ks_log_open("debug", "/dev/null");
  ks_http_global_init();
  const char *pems[3] = {PEM_EC, PEM_RSA, PEM_ED};
  const char *infos[3] = {"FW EC-P256 SHA-256", "FW RSA-1024 SHA-256", "FW Ed25519 SHA-512"};
  size_t cap = 256;
  for (int i = 0; i < 3; i++) cap += 2 * strlen(pems[i]) + 128;
  char *json = calloc(1, cap);
  if (!json) abort();
  strcat(json, "[");
  for (int i = 0; i < 3; i++) {
    char *e = json_escape(pems[i]);
    if (!e) abort();
    snprintf(json + strlen(json), cap - strlen(json), "%s{\"keyid\":\"k%d\",\"keyinfo\":\"%s\",\"certificate\":\"%s\"}", i ? "," : "",
             i, infos[i], e);
    free(e);
  }
  strcat(json, "]");
  char err[200];
  if (ks_keys_parse(json, strlen(json), &g_sign_keys, err, sizeof err) || g_sign_keys.n != 3) {
    fprintf(stderr, "fuzz: the sign target's keys do not parse\n");
    abort();
  }
  free(json);
  atexit(free_sign_keys); /* before LeakSanitizer's check at exit */
  return 0;
}

/* The sign target's input: SHA-256("fuzz") as the plan wants it (ECDSA: the digest; RSA PKCS#1: its DigestInfo;
 * Ed25519: the message "fuzz"). */
static void sign_target(const struct ks_key *k, const char *body, size_t len) {
  struct ks_mech_plan plan;
  memset(&plan, 0, sizeof plan);
  unsigned char digest[32], input[128];
  size_t inlen = 0;
  EVP_Digest("fuzz", 4, digest, NULL, EVP_sha256(), NULL);
  plan.hash = KS_SHA256;
  if (k->type == KS_KEY_EC) {
    plan.mech = CKM_ECDSA, plan.padding = "none", plan.format = "p1363";
    memcpy(input, digest, 32), inlen = 32;
  } else if (k->type == KS_KEY_RSA) {
    size_t pl;
    const unsigned char *p = ks_digestinfo_prefix(KS_SHA256, &pl);
    plan.mech = CKM_RSA_PKCS, plan.padding = "digestinfo", plan.format = "asn1";
    memcpy(input, p, pl), memcpy(input + pl, digest, 32), inlen = pl + 32;
  } else {
    plan.mech = CKM_EDDSA, plan.hash = KS_SHA512, plan.message = 1;
    memcpy(input, "fuzz", 4), inlen = 4;
  }
  unsigned char sig[1024];
  memset(sig, 0xaa, sizeof sig);
  CK_RV rv = ks_sign_answer(k, &plan, input, inlen, body, len, sig, k->sig_len);
  /* Bytes go to the caller only when they are this key's signature of this input. */
  if (rv == CKR_OK && ks_verify(k, &plan, input, inlen, sig, k->sig_len) != CKR_OK) abort();
  if (rv != CKR_OK && rv != CKR_DEVICE_ERROR) abort();
}

static void keys_target(const char *body, size_t len) {
  struct ks_keylist l;
  char err[200];
  if (ks_keys_parse(body, len, &l, err, sizeof err)) return;
  for (size_t i = 0; i < l.n; i++) {
    const struct ks_key *k = &l.keys[i];
    CK_MECHANISM_TYPE allowed[8];
    size_t n = ks_mech_allowed(k, allowed, 8);
    if (n > 8 || !k->keyid || !k->cert_der || !k->spki || !k->sig_len || k->sig_len > 1024 * 8) abort();
    for (size_t m = 0; m < ks_mechanisms_count; m++) {
      CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
      CK_MECHANISM mech = {ks_mechanisms[m], NULL, 0};
      if (ks_mechanisms[m] == CKM_RSA_PKCS_PSS || ks_mechanisms[m] == CKM_SHA256_RSA_PKCS_PSS) mech.pParameter = &pss, mech.ulParameterLen = sizeof pss;
      struct ks_mech_plan plan;
      char why[300];
      if (ks_mech_plan(k, &mech, &plan, why, sizeof why) != CKR_OK || plan.message) continue;
      unsigned char digest[64] = {0}, input[256];
      size_t inlen;
      if (ks_mech_input(k, &plan, digest, ks_hash_len(plan.hash), input, &inlen, why, sizeof why) == CKR_OK) {
        unsigned char sig[1024] = {0};
        size_t sl = k->sig_len <= sizeof sig ? k->sig_len : sizeof sig;
        ks_verify(k, &plan, input, inlen, sig, sl);
      }
    }
  }
  ks_keys_drop_ed25519(&l);
  ks_keys_free(&l);
}

static void cert_target(const uint8_t *der, size_t len, unsigned char which) {
  static const char *infos[] = {"FW RSA-2048 SHA-256", "FW EC-P384 SHA-384", "FW Ed25519", "FW EC-P521", "FW x"};
  size_t b64cap = 4 * ((len + 2) / 3) + 1;
  char *b64 = malloc(b64cap), *json = malloc(b64cap + b64cap / 64 * 2 + 256);
  if (!b64 || !json) abort();
  size_t b64len = (size_t)EVP_EncodeBlock((unsigned char *)b64, der, (int)len);
  int n = sprintf(json, "[{\"keyid\":\"c\",\"keyinfo\":\"%s\",\"certificate\":\"-----BEGIN CERTIFICATE-----\\n", infos[which % 5]);
  for (size_t i = 0; i < b64len; i += 64) n += sprintf(json + n, "%.64s\\n", b64 + i);
  n += sprintf(json + n, "-----END CERTIFICATE-----\\n\"}]");
  keys_target(json, (size_t)n);
  free(b64);
  free(json);
}

static const char *g_env_text;
static size_t g_env_len;
static char g_env_value[9000];

/* getenv over NAME=VALUE lines of the fuzz input (the first line that names it wins). */
static const char *fuzz_getenv(const char *name) {
  if (!strcmp(name, "KEYSERVER_PKCS11_CONFIG")) return NULL; /* no file: the config target has it */
  size_t nl = strlen(name);
  for (size_t i = 0; i < g_env_len;) {
    size_t e = i;
    while (e < g_env_len && g_env_text[e] != '\n') e++;
    if (e - i > nl && !memcmp(g_env_text + i, name, nl) && g_env_text[i + nl] == '=') {
      size_t vl = e - i - nl - 1;
      if (vl >= sizeof g_env_value) vl = sizeof g_env_value - 1;
      memcpy(g_env_value, g_env_text + i + nl + 1, vl);
      g_env_value[vl] = 0; /* an environment value ends at its first NUL, as getenv's would */
      return g_env_value;
    }
    i = e + 1;
  }
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  LLVMFuzzerInitialize(NULL, NULL); /* once: libFuzzer calls it first, a plain driver may not */
  if (size < 1) return 0;
  unsigned char target = data[0] % 8, arg = size > 1 ? data[1] : 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  /* Parsers that take a C string get a NUL-terminated copy (cJSON_ParseWithLength ones get the bytes as they are,
   * in a buffer of exactly that size, so a read past the end is caught). */
  char *copy = malloc(n + 1);
  if (!copy) return 0;
  memcpy(copy, p, n);
  copy[n] = 0;
  char *exact = malloc(n ? n : 1);
  if (!exact) {
    free(copy);
    return 0;
  }
  memcpy(exact, p, n);
  char err[400];
  switch (target) {
    case 0:
      keys_target(exact, n);
      break;
    case 1:
      cert_target(p + (n > 0), n - (n > 0), arg);
      break;
    case 2: {
      struct ks_config c;
      memset(&c, 0, sizeof c);
      ks_config_parse_text(&c, exact, n, err, sizeof err);
      ks_config_free(&c);
      break;
    }
    case 3: {
      struct ks_config c;
      g_env_text = copy;
      g_env_len = n;
      if (!ks_config_load(&c, fuzz_getenv, err, sizeof err)) {
        char path[4300];
        ks_ksctl_cache_file(&c, path, sizeof path); /* the cache file name from hostile endpoint, client id, scope */
      }
      ks_config_free(&c);
      break;
    }
    case 4: {
      char *access = NULL, *refresh = NULL;
      double expires = 0;
      if (!ks_parse_ksctl_cache(exact, n, &access, &expires, &refresh)) {
        if (!access || expires < 0 || expires >= 1e15) abort();
        if (ks_token_usable(access) && !b64token(access)) abort();
      } else if (access || refresh) {
        abort();
      }
      free(access);
      free(refresh);
      break;
    }
    case 5: {
      static const long statuses[] = {200, 400, 401, 500, 503, 302, 201, 429};
      char *access = NULL, *refresh = NULL;
      long expires = 0;
      CK_RV rv = ks_token_answer("secret", statuses[arg % 8], n > 1 ? exact + 1 : NULL, n > 1 ? n - 1 : 0, &access, &refresh, &expires);
      if (rv == CKR_OK && (!access || !ks_token_usable(access) || !b64token(access) || expires < 1 || expires > 86400)) abort();
      if (rv != CKR_OK && (access || refresh)) abort();
      free(access);
      free(refresh);
      break;
    }
    case 6:
      sign_target(&g_sign_keys.keys[arg % 3], n > 1 ? exact + 1 : NULL, n > 1 ? n - 1 : 0);
      break;
    case 7: {
      static const long statuses[] = {400, 401, 403, 404, 409, 413, 429, 500, 503, 302, 0, 418};
      struct ks_http_result r;
      memset(&r, 0, sizeof r);
      r.status = statuses[arg % 12];
      r.body.data = n > 1 ? exact + 1 : NULL;
      r.body.len = n > 1 ? n - 1 : 0;
      CK_RV rv = ks_refusal("fuzz", &r);
      if (rv == CKR_OK) abort();
      unsigned char out[64];
      size_t outlen;
      if (!ks_unhex(copy, out, sizeof out, &outlen) && outlen > sizeof out) abort();
      ks_problem_to_rv(r.status, copy);
      break;
    }
  }
  free(copy);
  free(exact);
  return 0;
}
