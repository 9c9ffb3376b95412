/* What each PKCS#11 signature mechanism becomes as a Keyserver sign order, and what the Keyserver's answers
 * become as CKR_ codes. Pure logic: no I/O, so the unit tests cover every case. */
#include <stdio.h>
#include <string.h>

#include "ks.h"

const CK_MECHANISM_TYPE ks_mechanisms[] = {
    CKM_ECDSA,          CKM_ECDSA_SHA256,       CKM_ECDSA_SHA384,       CKM_ECDSA_SHA512,
    CKM_RSA_PKCS,       CKM_SHA256_RSA_PKCS,    CKM_SHA384_RSA_PKCS,    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,   CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS,
    CKM_EDDSA, /* last: C_GetMechanismList leaves it out unless KEYSERVER_PKCS11_EDDSA=on */
};

/* PKCS#11 3.0's CK_EDDSA_PARAMS (p11-kit 0.24's pkcs11.h predates it). */
struct ks_eddsa_params {
  CK_BBOOL phFlag;
  CK_ULONG ulContextDataLen;
  CK_BYTE_PTR pContextData;
};
const size_t ks_mechanisms_count = sizeof ks_mechanisms / sizeof ks_mechanisms[0];

const char *ks_mech_name(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_ECDSA: return "CKM_ECDSA";
    case CKM_ECDSA_SHA256: return "CKM_ECDSA_SHA256";
    case CKM_ECDSA_SHA384: return "CKM_ECDSA_SHA384";
    case CKM_ECDSA_SHA512: return "CKM_ECDSA_SHA512";
    case CKM_RSA_PKCS: return "CKM_RSA_PKCS";
    case CKM_SHA256_RSA_PKCS: return "CKM_SHA256_RSA_PKCS";
    case CKM_SHA384_RSA_PKCS: return "CKM_SHA384_RSA_PKCS";
    case CKM_SHA512_RSA_PKCS: return "CKM_SHA512_RSA_PKCS";
    case CKM_RSA_PKCS_PSS: return "CKM_RSA_PKCS_PSS";
    case CKM_SHA256_RSA_PKCS_PSS: return "CKM_SHA256_RSA_PKCS_PSS";
    case CKM_SHA384_RSA_PKCS_PSS: return "CKM_SHA384_RSA_PKCS_PSS";
    case CKM_SHA512_RSA_PKCS_PSS: return "CKM_SHA512_RSA_PKCS_PSS";
    case CKM_EDDSA: return "CKM_EDDSA";
    default: return "an unknown mechanism";
  }
}

static const unsigned char DI_SHA256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                          0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const unsigned char DI_SHA384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                          0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const unsigned char DI_SHA512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                          0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

const unsigned char *ks_digestinfo_prefix(enum ks_hash h, size_t *len) {
  *len = sizeof DI_SHA256; /* all three prefixes are 19 bytes */
  return h == KS_SHA384 ? DI_SHA384 : h == KS_SHA512 ? DI_SHA512 : DI_SHA256;
}

int ks_digestinfo_hash(const unsigned char *data, size_t len) {
  for (int h = KS_SHA256; h <= KS_SHA512; h++) {
    size_t pl;
    const unsigned char *p = ks_digestinfo_prefix((enum ks_hash)h, &pl);
    if (len == pl + ks_hash_len((enum ks_hash)h) && !memcmp(data, p, pl)) return h;
  }
  return -1;
}

static CK_MECHANISM_TYPE ckm_sha(enum ks_hash h) { return h == KS_SHA384 ? CKM_SHA384 : h == KS_SHA512 ? CKM_SHA512 : CKM_SHA256; }
static CK_RSA_PKCS_MGF_TYPE mgf1(enum ks_hash h) {
  return h == KS_SHA384 ? CKG_MGF1_SHA384 : h == KS_SHA512 ? CKG_MGF1_SHA512 : CKG_MGF1_SHA256;
}

CK_RV ks_mech_plan(const struct ks_key *key, const CK_MECHANISM *m, struct ks_mech_plan *plan, char *why, size_t whysz) {
  memset(plan, 0, sizeof *plan);
  plan->mech = m->mechanism;
  plan->hash = key->hash;
  int hashed = 1, pss = 0;
  enum ks_key_type want;
  enum ks_hash h = key->hash;
  switch (m->mechanism) {
    case CKM_ECDSA: hashed = 0; /* fall through */
    case CKM_ECDSA_SHA256: case CKM_ECDSA_SHA384: case CKM_ECDSA_SHA512:
      want = KS_KEY_EC;
      h = m->mechanism == CKM_ECDSA_SHA384 ? KS_SHA384 : m->mechanism == CKM_ECDSA_SHA512 ? KS_SHA512 : KS_SHA256;
      plan->padding = "none";
      plan->format = "p1363"; /* PKCS#11 ECDSA signatures are r || s */
      break;
    case CKM_RSA_PKCS: hashed = 0; /* fall through */
    case CKM_SHA256_RSA_PKCS: case CKM_SHA384_RSA_PKCS: case CKM_SHA512_RSA_PKCS:
      want = KS_KEY_RSA;
      h = m->mechanism == CKM_SHA384_RSA_PKCS ? KS_SHA384 : m->mechanism == CKM_SHA512_RSA_PKCS ? KS_SHA512 : KS_SHA256;
      plan->padding = "digestinfo";
      plan->format = "asn1";
      break;
    case CKM_RSA_PKCS_PSS: hashed = 0; /* fall through */
    case CKM_SHA256_RSA_PKCS_PSS: case CKM_SHA384_RSA_PKCS_PSS: case CKM_SHA512_RSA_PKCS_PSS:
      want = KS_KEY_RSA;
      pss = 1;
      h = m->mechanism == CKM_SHA384_RSA_PKCS_PSS ? KS_SHA384 : m->mechanism == CKM_SHA512_RSA_PKCS_PSS ? KS_SHA512 : KS_SHA256;
      plan->padding = "pss";
      plan->format = "asn1";
      break;
    case CKM_EDDSA:
      /* PureEdDSA: the message itself becomes a message sign order; nothing is hashed here. */
      if (key->type != KS_KEY_ED25519) {
        snprintf(why, whysz, "key %s is not an Ed25519 key: CKM_EDDSA refused", key->keyid);
        return CKR_KEY_TYPE_INCONSISTENT;
      }
      if (m->pParameter || m->ulParameterLen) {
        /* Only the parameters that still mean Ed25519: no prehash (Ed25519ph), no context (Ed25519ctx). */
        const struct ks_eddsa_params *e = m->pParameter;
        if (!e || m->ulParameterLen != sizeof *e || e->phFlag || e->ulContextDataLen) {
          snprintf(why, whysz, "key %s signs pure Ed25519 only (no prehash, no context)", key->keyid);
          return CKR_MECHANISM_PARAM_INVALID;
        }
      }
      plan->message = 1;
      return CKR_OK;
    default:
      snprintf(why, whysz, "mechanism 0x%lx is not supported", (unsigned long)m->mechanism);
      return CKR_MECHANISM_INVALID;
  }
  if (key->type != want) {
    snprintf(why, whysz, "key %s is not a%s key: %s refused", key->keyid, want == KS_KEY_RSA ? "n RSA" : "n EC", ks_mech_name(m->mechanism));
    return CKR_KEY_TYPE_INCONSISTENT;
  }
  if (!hashed) h = key->hash;
  if (h != key->hash) {
    snprintf(why, whysz, "key %s signs %s digests; %s is not allowed", key->keyid, ks_hash_name(key->hash), ks_mech_name(m->mechanism));
    return CKR_MECHANISM_INVALID;
  }
  if (pss) {
    /* The Keyserver signs PSS with MGF1 of the key's hash and a salt as long as the hash. */
    const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
    if (!p || m->ulParameterLen != sizeof *p) {
      snprintf(why, whysz, "%s needs CK_RSA_PKCS_PSS_PARAMS", ks_mech_name(m->mechanism));
      return CKR_MECHANISM_PARAM_INVALID;
    }
    if (p->hashAlg != ckm_sha(h) || p->mgf != mgf1(h) || p->sLen != ks_hash_len(h)) {
      snprintf(why, whysz, "key %s signs PSS with %s, MGF1-%s and a %zu-byte salt only", key->keyid, ks_hash_name(h),
               ks_hash_name(h), ks_hash_len(h));
      return CKR_MECHANISM_PARAM_INVALID;
    }
  } else if (m->pParameter || m->ulParameterLen) {
    snprintf(why, whysz, "%s takes no parameters", ks_mech_name(m->mechanism));
    return CKR_MECHANISM_PARAM_INVALID;
  }
  plan->hash = h;
  plan->hashes_locally = hashed;
  return CKR_OK;
}

CK_RV ks_mech_message(const struct ks_key *key, size_t len, char *why, size_t whysz) {
  if (len == 0 || len > KS_MAX_MESSAGE) {
    snprintf(why, whysz, "CKM_EDDSA with key %s signs messages of 1 to %d bytes, got %zu", key->keyid, KS_MAX_MESSAGE, len);
    return CKR_DATA_LEN_RANGE;
  }
  return CKR_OK;
}

CK_RV ks_mech_input(const struct ks_key *key, const struct ks_mech_plan *plan, const unsigned char *data, size_t len,
                    unsigned char *out, size_t *outlen, char *why, size_t whysz) {
  size_t hl = ks_hash_len(plan->hash);
  if (plan->mech == CKM_RSA_PKCS) {
    int h = ks_digestinfo_hash(data, len);
    if (h < 0) {
      snprintf(why, whysz, "CKM_RSA_PKCS input must be a DER DigestInfo of SHA-256, SHA-384 or SHA-512");
      return CKR_DATA_INVALID;
    }
    if ((enum ks_hash)h != key->hash) {
      snprintf(why, whysz, "key %s signs %s digests; the DigestInfo holds %s", key->keyid, ks_hash_name(key->hash),
               ks_hash_name((enum ks_hash)h));
      return CKR_DATA_INVALID;
    }
    memcpy(out, data, len);
    *outlen = len;
    return CKR_OK;
  }
  if (len != hl) {
    snprintf(why, whysz, "%s with key %s signs %zu-byte %s digests, got %zu bytes", ks_mech_name(plan->mech), key->keyid, hl,
             ks_hash_name(plan->hash), len);
    return CKR_DATA_LEN_RANGE;
  }
  size_t pl = 0;
  if (!strcmp(plan->padding, "digestinfo")) {
    const unsigned char *p = ks_digestinfo_prefix(plan->hash, &pl);
    memcpy(out, p, pl);
  }
  memcpy(out + pl, data, len);
  *outlen = pl + len;
  return CKR_OK;
}

size_t ks_mech_allowed(const struct ks_key *key, CK_MECHANISM_TYPE *out, size_t max) {
  size_t n = 0;
  static const CK_MECHANISM_TYPE ec[] = {CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512};
  static const CK_MECHANISM_TYPE rsa[] = {CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS};
  static const CK_MECHANISM_TYPE pss[] = {CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS};
  if (max < 4) return 0;
  if (key->type == KS_KEY_EC) {
    out[n++] = CKM_ECDSA;
    out[n++] = ec[key->hash];
  } else if (key->type == KS_KEY_RSA) {
    out[n++] = CKM_RSA_PKCS;
    out[n++] = rsa[key->hash];
    out[n++] = CKM_RSA_PKCS_PSS;
    out[n++] = pss[key->hash];
  } else if (key->type == KS_KEY_ED25519) {
    out[n++] = CKM_EDDSA;
  }
  return n;
}

/* Problem codes of POST /api/signorders and GET /api/keys (docs/api.md) and what a PKCS#11 caller should see. */
static const struct {
  const char *code;
  CK_RV rv;
} PROBLEMS[] = {
    /* The operation's policy refused this signature: not a device fault, the caller must get a new operation. */
    {"usage_exhausted", CKR_FUNCTION_REJECTED},
    {"operation_not_usable", CKR_FUNCTION_REJECTED},
    {"operation_not_found", CKR_FUNCTION_REJECTED},
    {"outside_window", CKR_FUNCTION_REJECTED},
    {"digest_not_allowed", CKR_FUNCTION_REJECTED},
    /* The caller may not use this key. */
    {"key_not_in_operation", CKR_KEY_FUNCTION_NOT_PERMITTED},
    {"key_not_permitted", CKR_KEY_FUNCTION_NOT_PERMITTED},
    {"key_not_usable", CKR_KEY_FUNCTION_NOT_PERMITTED},
    {"key_not_found", CKR_KEY_HANDLE_INVALID},
    {"permission_denied", CKR_KEY_FUNCTION_NOT_PERMITTED},
    /* Who is calling was not accepted. */
    {"invalid_token", CKR_USER_NOT_LOGGED_IN},
    {"unknown_subject", CKR_USER_NOT_LOGGED_IN},
    {"subject_disabled", CKR_USER_NOT_LOGGED_IN},
    {"bff_token_not_allowed", CKR_USER_NOT_LOGGED_IN},
    /* The input did not fit the key (the module checks first; these are the server's word). */
    {"digest_length_mismatch", CKR_DATA_LEN_RANGE},
    {"malformed_digestinfo", CKR_DATA_INVALID},
    {"digestinfo_hash_mismatch", CKR_DATA_INVALID},
    {"invalid_input_encoding", CKR_DATA_INVALID},
    {"padding_not_supported_for_key", CKR_MECHANISM_INVALID},
    {"message_required", CKR_KEY_TYPE_INCONSISTENT},
    {"message_not_supported_for_key", CKR_KEY_TYPE_INCONSISTENT},
    {"message_too_large", CKR_DATA_LEN_RANGE},
    {"payload_too_large", CKR_DATA_LEN_RANGE},
    {"validation_failed", CKR_ARGUMENTS_BAD},
    /* Only the module's own retry of a lost answer meets this (each C_Sign has a fresh Idempotency-Key): the first
     * request is still signing, a slow Keyserver and not a policy refusal. */
    {"conflict", CKR_DEVICE_ERROR},
};

/* The status class decides first, the problem code only refines a 4xx (ADR 0014, addendum): no answer, a 5xx or a
 * 429 is the device's fault whatever its body says (a proxy's 502 page, a 500 naming a policy code); an answer that
 * is not the API's (1xx, 2xx other than the expected success, a 3xx the module never follows) is CKR_DEVICE_ERROR. */
CK_RV ks_problem_to_rv(long status, const char *code) {
  if (status < 400 || status >= 500 || status == 429) return CKR_DEVICE_ERROR;
  if (code)
    for (size_t i = 0; i < sizeof PROBLEMS / sizeof PROBLEMS[0]; i++)
      if (!strcmp(PROBLEMS[i].code, code)) return PROBLEMS[i].rv;
  if (status == 401) return CKR_USER_NOT_LOGGED_IN;
  if (status == 403) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (status == 409) return CKR_FUNCTION_REJECTED;
  if (status == 413) return CKR_DATA_LEN_RANGE;
  return CKR_FUNCTION_FAILED;
}
