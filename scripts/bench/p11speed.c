/* Raw PKCS#11 signing rate of one token key, from C: the baseline bench-hsm.mjs compares the Node pool with.
 * usage: p11speed MODULE TOKEN_LABEL PIN KEY_ID_HEX MECH(ecdsa|rsa) INPUT_LEN SECONDS THREADS
 * Each thread has its own session; prints the total signatures per second, and with P11SPEED_CPU set a second
 * line with the process CPU time (user+system seconds) of the measured window. */
#include <dlfcn.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "pkcs11/pkcs11.h"

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static CK_BYTE id[64];
static CK_ULONG idLen;
static CK_MECHANISM_TYPE mech;
static CK_ULONG inLen;
static double seconds;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static void *worker(void *arg) {
  long *count = arg;
  CK_SESSION_HANDLE s;
  if (f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) exit(3);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id, idLen}};
  CK_OBJECT_HANDLE key;
  CK_ULONG n = 0;
  f->C_FindObjectsInit(s, tmpl, 2);
  f->C_FindObjects(s, &key, 1, &n);
  f->C_FindObjectsFinal(s);
  if (n != 1) exit(4);
  CK_BYTE in[512], out[1024];
  memset(in, 0x5a, sizeof in);
  CK_MECHANISM m = {mech, NULL, 0};
  double end = now() + seconds;
  while (now() < end) {
    CK_ULONG outLen = sizeof out;
    if (f->C_SignInit(s, &m, key) != CKR_OK || f->C_Sign(s, in, inLen, out, &outLen) != CKR_OK) exit(5);
    (*count)++;
  }
  f->C_CloseSession(s);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 9) return 2;
  void *lib = dlopen(argv[1], RTLD_NOW);
  CK_C_GetFunctionList gfl = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
  if (!gfl || gfl(&f) != CKR_OK) return 6;
  CK_C_INITIALIZE_ARGS ia = {0};
  ia.flags = CKF_OS_LOCKING_OK;
  if (f->C_Initialize(&ia) != CKR_OK) return 7;
  CK_SLOT_ID slots[64];
  CK_ULONG ns = 64;
  f->C_GetSlotList(CK_TRUE, slots, &ns);
  int found = 0;
  for (CK_ULONG i = 0; i < ns && !found; i++) {
    CK_TOKEN_INFO ti;
    f->C_GetTokenInfo(slots[i], &ti);
    char label[33];
    memcpy(label, ti.label, 32);
    label[32] = 0;
    for (int j = 31; j >= 0 && label[j] == ' '; j--) label[j] = 0;
    if (strcmp(label, argv[2]) == 0) { slot = slots[i]; found = 1; }
  }
  if (!found) return 8;
  CK_SESSION_HANDLE login;
  f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &login);
  if (f->C_Login(login, CKU_USER, (CK_UTF8CHAR_PTR)argv[3], strlen(argv[3])) != CKR_OK) return 9;
  idLen = strlen(argv[4]) / 2;
  for (CK_ULONG i = 0; i < idLen; i++) sscanf(argv[4] + 2 * i, "%2hhx", &id[i]);
  mech = strcmp(argv[5], "ecdsa") == 0 ? CKM_ECDSA : CKM_RSA_PKCS;
  inLen = strtoul(argv[6], NULL, 10);
  seconds = atof(argv[7]);
  int threads = atoi(argv[8]);
  pthread_t t[64];
  long counts[64] = {0};
  double cpu0 = cpu();
  double start = now();
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, &counts[i]);
  long total = 0;
  for (int i = 0; i < threads; i++) { pthread_join(t[i], NULL); total += counts[i]; }
  printf("%.1f\n", total / (now() - start));
  if (getenv("P11SPEED_CPU")) printf("%.6f\n", cpu() - cpu0);
  f->C_Logout(login);
  f->C_Finalize(NULL);
  return 0;
}
