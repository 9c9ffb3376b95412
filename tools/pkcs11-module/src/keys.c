/* The token's objects: GET /api/keys gives [{keyid, keyinfo, certificate}]; the certificate is the source of
 * the public key, keyinfo ("FW RSA-3072 SHA-256, 2 approver(s)") of the key's type and hash. Only firmware keys
 * sign sign orders, so only FW keys become objects; Ed25519 keys are left out until sign orders can sign them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ks.h"

#define MAX_KEYS 1024
#define MAX_KEYID 128
#define MAX_PEM (64 * 1024)

const char *ks_hash_name(enum ks_hash h) { return h == KS_SHA384 ? "SHA-384" : h == KS_SHA512 ? "SHA-512" : "SHA-256"; }
size_t ks_hash_len(enum ks_hash h) { return h == KS_SHA384 ? 48 : h == KS_SHA512 ? 64 : 32; }

static void key_free(struct ks_key *k) {
  free(k->keyid);
  free(k->keyinfo);
  free(k->cert_der);
  free(k->subject);
  free(k->issuer);
  free(k->serial);
  free(k->spki);
  free(k->modulus);
  free(k->exponent);
  free(k->ec_params);
  free(k->ec_point);
  memset(k, 0, sizeof *k);
}

void ks_keys_free(struct ks_keylist *l) {
  for (size_t i = 0; i < l->n; i++) key_free(&l->keys[i]);
  free(l->keys);
  l->keys = NULL;
  l->n = 0;
}

/* i2d of any OpenSSL object into a malloc'd buffer. */
#define DER(fn, obj, outp, lenp)                        \
  do {                                                  \
    unsigned char *tmp_ = NULL;                         \
    int n_ = fn(obj, &tmp_);                            \
    if (n_ <= 0) goto bad;                              \
    *(outp) = malloc((size_t)n_);                       \
    if (!*(outp)) {                                     \
      OPENSSL_free(tmp_);                               \
      goto bad;                                         \
    }                                                   \
    memcpy(*(outp), tmp_, (size_t)n_);                  \
    *(lenp) = (size_t)n_;                               \
    OPENSSL_free(tmp_);                                 \
  } while (0)

static int bn_param(EVP_PKEY *pk, const char *name, unsigned char **out, size_t *len) {
  BIGNUM *bn = NULL;
  if (!EVP_PKEY_get_bn_param(pk, name, &bn)) return -1;
  *len = (size_t)BN_num_bytes(bn);
  *out = malloc(*len ? *len : 1);
  if (*out) BN_bn2bin(bn, *out);
  BN_free(bn);
  return *out ? 0 : -1;
}

/* DER OCTET STRING around raw point bytes (CKA_EC_POINT). */
static int octet_string(const unsigned char *p, size_t n, unsigned char **out, size_t *len) {
  ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
  if (!os || !ASN1_OCTET_STRING_set(os, p, (int)n)) {
    ASN1_OCTET_STRING_free(os);
    return -1;
  }
  unsigned char *tmp = NULL;
  int l = i2d_ASN1_OCTET_STRING(os, &tmp);
  ASN1_OCTET_STRING_free(os);
  if (l <= 0) return -1;
  *out = malloc((size_t)l);
  if (*out) memcpy(*out, tmp, (size_t)l);
  *len = (size_t)l;
  OPENSSL_free(tmp);
  return *out ? 0 : -1;
}

static int oid_der(int nid, unsigned char **out, size_t *len) {
  ASN1_OBJECT *o = OBJ_nid2obj(nid);
  unsigned char *tmp = NULL;
  int l = o ? i2d_ASN1_OBJECT(o, &tmp) : -1;
  if (l <= 0) return -1;
  *out = malloc((size_t)l);
  if (*out) memcpy(*out, tmp, (size_t)l);
  *len = (size_t)l;
  OPENSSL_free(tmp);
  return *out ? 0 : -1;
}

/* Fills the certificate and public-key fields of `k` from a PEM certificate. */
static int from_certificate(struct ks_key *k, const char *pem, char *why, size_t whysz) {
  X509 *x = NULL;
  EVP_PKEY *pk = NULL;
  size_t plen = strlen(pem);
  if (plen > MAX_PEM) {
    snprintf(why, whysz, "certificate larger than %d bytes", MAX_PEM);
    return -1;
  }
  BIO *b = BIO_new_mem_buf(pem, (int)plen);
  if (b) x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  if (!x) {
    snprintf(why, whysz, "certificate is not PEM X.509");
    return -1;
  }
  DER(i2d_X509, x, &k->cert_der, &k->cert_der_len);
  DER(i2d_X509_NAME, X509_get_subject_name(x), &k->subject, &k->subject_len);
  DER(i2d_X509_NAME, X509_get_issuer_name(x), &k->issuer, &k->issuer_len);
  DER(i2d_ASN1_INTEGER, X509_get0_serialNumber(x), &k->serial, &k->serial_len);
  DER(i2d_X509_PUBKEY, X509_get_X509_PUBKEY(x), &k->spki, &k->spki_len);
  pk = X509_get_pubkey(x);
  if (!pk) goto bad;
  k->bits = (unsigned long)EVP_PKEY_get_bits(pk);
  switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
      k->type = KS_KEY_RSA;
      if (bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &k->modulus, &k->modulus_len) ||
          bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &k->exponent, &k->exponent_len))
        goto bad;
      k->sig_len = k->modulus_len;
      break;
    case EVP_PKEY_EC:
    case EVP_PKEY_ED25519: {
      /* The point and curve straight from the certificate's SubjectPublicKeyInfo: independent of whichever
       * key-management code (an engine, a provider) the host process has loaded. */
      const unsigned char *raw = NULL;
      int rawlen = 0, ptype = 0;
      const void *pval = NULL;
      X509_ALGOR *alg = NULL;
      if (!X509_PUBKEY_get0_param(NULL, &raw, &rawlen, &alg, X509_get_X509_PUBKEY(x)) || !raw) goto bad;
      if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
        k->type = KS_KEY_ED25519;
        if (rawlen != 32 || oid_der(NID_ED25519, &k->ec_params, &k->ec_params_len) ||
            octet_string(raw, (size_t)rawlen, &k->ec_point, &k->ec_point_len))
          goto bad;
        k->sig_len = 64;
        break;
      }
      k->type = KS_KEY_EC;
      X509_ALGOR_get0(NULL, &ptype, &pval, alg);
      int nid = ptype == V_ASN1_OBJECT ? OBJ_obj2nid(pval) : NID_undef;
      k->bits = nid == NID_X9_62_prime256v1 ? 256 : nid == NID_secp384r1 ? 384 : nid == NID_secp521r1 ? 521 : 0;
      if (!k->bits) {
        snprintf(why, whysz, "the curve is not P-256, P-384 or P-521");
        goto fail;
      }
      if (rawlen != 1 + 2 * (int)((k->bits + 7) / 8) || raw[0] != 0x04) {
        snprintf(why, whysz, "the EC point is not uncompressed");
        goto fail;
      }
      if (oid_der(nid, &k->ec_params, &k->ec_params_len) || octet_string(raw, (size_t)rawlen, &k->ec_point, &k->ec_point_len)) goto bad;
      k->sig_len = 2 * ((k->bits + 7) / 8);
      break;
    }
    default:
      snprintf(why, whysz, "public key is not RSA, EC or Ed25519");
      goto fail;
  }
  EVP_PKEY_free(pk);
  X509_free(x);
  return 0;
bad:
  snprintf(why, whysz, "certificate could not be read");
fail:
  EVP_PKEY_free(pk);
  X509_free(x);
  return -1;
}

static enum ks_hash hash_of(const struct ks_key *k) {
  if (strstr(k->keyinfo, "SHA-384")) return KS_SHA384;
  if (strstr(k->keyinfo, "SHA-512")) return KS_SHA512;
  if (strstr(k->keyinfo, "SHA-256")) return KS_SHA256;
  /* The key's default hash, as the Keyserver chooses it. */
  if (k->type == KS_KEY_ED25519 || (k->type == KS_KEY_EC && k->bits == 521)) return KS_SHA512;
  if (k->type == KS_KEY_EC && k->bits == 384) return KS_SHA384;
  return KS_SHA256;
}

static int valid_keyid(const char *s) {
  size_t n = strlen(s);
  return n >= 1 && n <= MAX_KEYID;
}

size_t ks_keys_drop_ed25519(struct ks_keylist *l) {
  size_t kept = 0, dropped = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (l->keys[i].type == KS_KEY_ED25519) {
      char shown[140];
      ks_sanitize(shown, sizeof shown, l->keys[i].keyid, MAX_KEYID);
      ks_log(KS_LOG_INFO, "key %s is Ed25519: not listed (KEYSERVER_PKCS11_EDDSA=on lists it with CKM_EDDSA)", shown);
      key_free(&l->keys[i]);
      dropped++;
    } else {
      l->keys[kept++] = l->keys[i];
    }
  }
  l->n = kept;
  return dropped;
}

int ks_keys_parse(const char *json, size_t len, struct ks_keylist *out, char *err, size_t errsz) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!cJSON_IsArray(root)) {
    snprintf(err, errsz, "GET /api/keys did not answer a JSON array");
    cJSON_Delete(root);
    return -1;
  }
  int total = cJSON_GetArraySize(root);
  size_t cap = total > MAX_KEYS ? MAX_KEYS : (size_t)total;
  out->keys = calloc(cap ? cap : 1, sizeof *out->keys);
  if (!out->keys) {
    cJSON_Delete(root);
    snprintf(err, errsz, "out of memory");
    return -1;
  }
  const cJSON *item;
  int index = -1;
  cJSON_ArrayForEach(item, root) {
    index++;
    if (out->n >= cap) {
      ks_log(KS_LOG_WARN, "more than %d keys: the rest are not listed", MAX_KEYS);
      break;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "keyid");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(item, "keyinfo");
    const cJSON *cert = cJSON_GetObjectItemCaseSensitive(item, "certificate");
    if (!cJSON_IsString(id) || !cJSON_IsString(info) || !cJSON_IsString(cert) || !valid_keyid(id->valuestring)) {
      ks_log(KS_LOG_WARN, "key #%d of GET /api/keys is malformed: skipped", index);
      continue;
    }
    char shown[140];
    ks_sanitize(shown, sizeof shown, id->valuestring, MAX_KEYID);
    if (strncmp(info->valuestring, "FW ", 3) != 0) {
      ks_log(KS_LOG_DEBUG, "key %s is not a firmware key: not a signing object", shown);
      continue;
    }
    int dup = 0;
    for (size_t i = 0; i < out->n; i++) dup |= !strcmp(out->keys[i].keyid, id->valuestring);
    if (dup) {
      ks_log(KS_LOG_WARN, "key %s is listed twice: the second is skipped", shown);
      continue;
    }
    struct ks_key *k = &out->keys[out->n];
    char why[120] = "";
    k->keyid = strdup(id->valuestring);
    k->keyinfo = strndup(info->valuestring, 512);
    if (!k->keyid || !k->keyinfo || from_certificate(k, cert->valuestring, why, sizeof why)) {
      ks_log(KS_LOG_WARN, "key %s skipped: %s", shown, why[0] ? why : "out of memory");
      key_free(k);
      continue;
    }
    k->hash = hash_of(k);
    out->n++;
  }
  cJSON_Delete(root);
  return 0;
}
