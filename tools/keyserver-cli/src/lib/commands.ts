import { ADMIN_HELP, ADMIN_OPTIONS } from './admin';
import { CliError, Exit } from './errors';

/** One command of ksctl: its help text and what shell completion offers. Declared once, used by both. */
export interface CommandSpec {
  name: string;
  subcommands: string[];
  /** Options this command takes (besides the global ones). */
  options: string[];
  help: string;
}

/** Options every command takes. */
export const GLOBAL_OPTIONS = [
  '--api', '--token-endpoint', '--client-id', '--client-secret', '--scope', '--demo', '--json', '--output', '--no-progress',
  '--certificate', '--private-key', '--assertion-alg', '--wif', '--federated-token-file', '--service-connection-id', '--pkce',
  '--redirect-uri', '--timeout', '--help', '--version',
];

/** Options whose value is a file name (completion offers files). */
export const FILE_OPTIONS = [
  '--demo', '--certificate', '--private-key', '--federated-token-file', '--chain', '--file', '--message', '--out', '--csr', '--chain-out',
  '--signature', '--ca', '--crl', '--cert-file',
];

/** Fixed values of an option (completion offers them). */
export const OPTION_VALUES: Record<string, string[]> = {
  '--output': ['table', 'json', 'pem', 'der'],
  '--hash': ['sha256', 'sha384', 'sha512'],
  '--padding': ['none', 'digestinfo', 'pss'],
  '--format': ['asn1', 'p1363'],
  '--assertion-alg': ['PS256', 'RS256'],
  '--algorithm': ['EC_P256', 'EC_P384', 'EC_P521', 'RSA_2048', 'RSA_3072', 'RSA_4096', 'ED25519'],
  '--type': ['CA', 'FW'],
  '--kind': ['USER', 'CLIENT'],
  '--reason': ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold'],
};

export const COMMANDS: CommandSpec[] = [
  {
    name: 'login',
    subcommands: [],
    options: ['--no-browser'],
    help: `Usage: ksctl login [--pkce [--no-browser] [--timeout SECONDS]]

Gets a token and caches it (0600 file in ~/.cache/ksctl or KSCTL_CACHE_DIR), one file per token
endpoint, client, scope and credential: a changed secret or certificate never reuses another's token.
--pkce: a user signs in in the browser on a loopback redirect (--redirect-uri); the refresh token is
kept and used silently. --timeout: with --pkce the time for the sign-in (default 300 s; exit 3 login_timeout),
the code exchange after it ends by KSCTL_TIMEOUT (default 120 s); without --pkce the token request's deadline.`,
  },
  {
    name: 'keys',
    subcommands: ['list', 'show'],
    options: ['--chain'],
    help: `Usage: ksctl keys list
       ksctl keys show KEYID [--chain FILE] [--output pem|der]

list: the keys you may use (a table; --json for scripts).
show: one key; --chain FILE writes its PEM chain (key certificate first, root last);
--output pem prints that chain, --output der the key certificate alone.`,
  },
  {
    name: 'operations',
    subcommands: ['create', 'show', 'wait'],
    options: ['--key', '--description', '--hours', '--digest', '--valid-from', '--idempotency-key'],
    help: `Usage: ksctl operations create --key KEYID=N... --description TEXT [--hours H] [--digest HEX...]
                                [--valid-from ISO-TIME --idempotency-key K]
       ksctl operations show ID
       ksctl operations wait ID [--timeout SECONDS]

create: orders an operation (N usages per key, valid for H hours, default 24; --digest limits it to
those digests; inside Azure Pipelines or GitHub Actions it declares the run's project, pipeline, run,
commit and link, which approvers see). --valid-from: the window starts there (default a minute ago) and
lasts H hours. --idempotency-key (with --valid-from, so a rerun sends the same window): a rerun of the same
command returns the same operation, never a second one for the approvers; the same key with anything else
changed is refused (exit 4, idempotency_key_reused). wait: until it is APPROVED (exit 4 if rejected, cancelled or expired; 1 on timeout).
wait --timeout: how long to wait for the approval (default 600 s, then exit 1 timeout); each poll ends by
KSCTL_TIMEOUT (default 120 s, then exit 7 deadline_exceeded).`,
  },
  {
    name: 'sign',
    subcommands: [],
    options: ['--operation', '--key', '--digest', '--file', '--message', '--hash', '--padding', '--format', '--description', '--out', '--idempotency-key', '--cms'],
    help: `Usage: ksctl sign --operation ID --key KEYID (--digest HEX | --file PATH) [--hash sha256|sha384|sha512]
                  [--padding none|digestinfo|pss] [--format asn1|p1363] [--description TEXT]
                  [--out FILE] [--idempotency-key K]
       ksctl sign --operation ID --key ED25519_KEYID --message PATH [--description TEXT] [--out FILE] [--idempotency-key K]
       ksctl sign --cms --operation ID --key KEYID --file PATH [--out FILE.p7s]

A raw signature: the file is hashed locally as it streams (--hash defaults to the key's hash; a
--digest tells its hash by its length); --out writes the signature (binary). --idempotency-key makes
a retry return the same signature without using another usage (raw signatures and --message only; --cms
takes none).
--message: an Ed25519 key signs the file itself (PureEdDSA, at most 64 KiB; an operation's --digest
must then list its SHA-256); --out writes the 64-byte signature.
--cms: the file streams to the Keyserver, which returns a detached CMS (default FILE.p7s).
Deadline: --timeout / KSCTL_TIMEOUT, else 120 s plus 1 s per MiB of --file (a 1 GiB image: 1144 s); on expiry
exit 7 deadline_exceeded and no file. A sign order cut by it may have been signed: rerun it with the same
--idempotency-key to get that signature without another usage (--cms: check the operation's usages first).
--out (and FILE.p7s) must be a regular file or nothing, never a symlink, in an existing directory (exit 2
otherwise, before anything is signed); it is written whole, a new file renamed over the name.`,
  },
  {
    name: 'cert',
    subcommands: ['issue', 'revoke'],
    options: ['--operation', '--key', '--csr', '--out', '--chain-out', '--reason', '--idempotency-key'],
    help: `Usage: ksctl cert issue --operation ID --key CA_KEYID --csr FILE [--out CERT.pem] [--chain-out CHAIN.pem]
                        [--output pem|der] [--idempotency-key K]
       ksctl cert revoke CERTIFICATE_ID [--reason keyCompromise|superseded|...]

issue: a device certificate from a PKCS#10 CSR (one usage of the operation); --out writes the
certificate, --chain-out certificate + chain; --output pem prints certificate and chain, --output der
the certificate alone; --idempotency-key makes a retry return the same certificate without using
another usage (the same key with another CSR is refused). revoke: the CRL lists it.`,
  },
  {
    name: 'verify',
    subcommands: [],
    options: ['--signature', '--file', '--digest', '--message', '--chain', '--ca', '--hash', '--padding', '--format', '--at', '--cms', '--crl', '--crl-fetch'],
    help: `Usage: ksctl verify --signature FILE.sig (--file PATH | --digest HEX) --chain CHAIN.pem --ca ROOT.pem
                    [--hash H] [--padding none|digestinfo|pss] [--format asn1|p1363] [--at ISO-TIME]
       ksctl verify --signature FILE.sig --message PATH --chain CHAIN.pem --ca ROOT.pem [--at ISO-TIME]   (Ed25519)
       ksctl verify --cms --signature FILE.p7s --file PATH --ca ROOT.pem [--chain CHAIN.pem] [--at ISO-TIME]
       ... [--crl FILE]... [--crl-fetch]

Offline: the signature, the chain to --ca, the codeSigning usage, validity at --at (default now).
--cms with an RFC 3161 signature timestamp: the token (imprint = hash of the signature value, TSA
certificate with the timeStamping usage only, its chain to --ca) is verified, and the signer's chain is
checked at the time the token states, so a signature outlives its expired FW certificate.
Revocation only with --crl (DER or PEM files) and/or --crl-fetch (the certificates' CRL distribution
points: the only online part); every result says "revocation: checked" or "not-checked".
Exit 6 when anything does not verify.`,
  },
  {
    name: 'audit',
    subcommands: ['export', 'verify'],
    options: ['--out', '--root', '--tsa-cert'],
    help: `Usage: ksctl audit export [--out FILE.jsonl]
       ksctl audit verify FILE.jsonl [--root ROOT.pem] [--tsa-cert TSA.pem]

export: the whole audit log as JSON lines (auditors; stdout without --out), then its signed checkpoints, as the
chain stood when the export began. An export the Keyserver cut short is exit 5 audit_export_truncated: --out is
written only when the export arrived whole (a new file beside it, renamed), stdout's copy is incomplete.
verify: offline, every entry's hash and link, and every signed checkpoint (an RFC 3161 token of the Keyserver's TSA
over an entry hash) against the ROOT and TSA certificate you obtained out of band: the token verifies, chains to
--root, is signed by --tsa-cert, and asserts the entry hash at its seq (exit 6 and every problem otherwise:
link_broken, content_changed, checkpoint_mismatch, checkpoint_signature_invalid, checkpoint_untrusted,
checkpoint_out_of_order, checkpoint_missing: an audit.checkpoint entry names a checkpoint the export lacks;
acknowledgement_unsealed: a v1 entry's acknowledgement comes after the last signed checkpoint). Without
--root the checkpoints are checked against the certificate each token carries. The file is read as a stream.`,
  },
  {
    name: 'admin',
    subcommands: ['session', 'root-ceremony', 'key', 'role', 'subject'],
    options: ADMIN_OPTIONS,
    help: ADMIN_HELP,
  },
  {
    name: 'completion',
    subcommands: ['bash', 'zsh'],
    options: [],
    help: `Usage: ksctl completion bash|zsh

Prints a shell completion script:
  bash:  source <(ksctl completion bash)        (or save it in ~/.local/share/bash-completion/completions/ksctl)
  zsh:   source <(ksctl completion zsh)         (or save it as _ksctl in a directory of your $fpath)`,
  },
];

export function commandSpec(name: string | undefined): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

const words = (xs: string[]) => xs.join(' ');

/** The bash completion script: commands, subcommands, options, option values and files. */
export function bashCompletion(): string {
  const cases = COMMANDS.map((c) => `    ${c.name}) subs="${words(c.subcommands)}"; opts="${words(c.options)}" ;;`).join('\n');
  const values = Object.entries(OPTION_VALUES)
    .map(([o, v]) => `    ${o}) COMPREPLY=($(compgen -W "${words(v)}" -- "$cur")); return ;;`)
    .join('\n');
  return `# bash completion for ksctl (ksctl completion bash)
_ksctl() {
  local cur prev cmd subs opts i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
${values}
    ${FILE_OPTIONS.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) cmd="\${COMP_WORDS[i]}"; break ;; esac
  done
  subs=""; opts=""
  case "$cmd" in
${cases}
  esac
  if [[ -z "$cmd" ]]; then
    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "${words(GLOBAL_OPTIONS)}" -- "$cur"))
    else COMPREPLY=($(compgen -W "${words(COMMANDS.map((c) => c.name))} help" -- "$cur")); fi
    return
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts ${words(GLOBAL_OPTIONS)}" -- "$cur"))
  elif [[ "$prev" == "$cmd" && -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _ksctl ksctl
`;
}

/** The zsh completion script (native compsys: compadd and _files). */
export function zshCompletion(): string {
  const cases = COMMANDS.map((c) => `    ${c.name}) subs=(${words(c.subcommands)}); opts=(${words(c.options)}) ;;`).join('\n');
  const values = Object.entries(OPTION_VALUES)
    .map(([o, v]) => `    ${o}) compadd -- ${words(v)}; return ;;`)
    .join('\n');
  return `#compdef ksctl
# zsh completion for ksctl (ksctl completion zsh)
_ksctl() {
  local prev=\${words[CURRENT-1]} cmd="" i
  local -a subs opts globals
  globals=(${words(GLOBAL_OPTIONS)})
  case $prev in
${values}
    ${FILE_OPTIONS.join('|')}) _files; return ;;
  esac
  for ((i = 2; i < CURRENT; i++)); do
    [[ \${words[i]} != -* ]] && { cmd=\${words[i]}; break }
  done
  case $cmd in
${cases}
  esac
  if [[ -z $cmd ]]; then
    if [[ \${words[CURRENT]} == -* ]]; then compadd -- $globals; else compadd -- ${words(COMMANDS.map((c) => c.name))} help; fi
    return
  fi
  if [[ \${words[CURRENT]} == -* ]]; then
    compadd -- $opts $globals
  elif [[ $prev == $cmd && \${#subs} -gt 0 ]]; then
    compadd -- $subs
  else
    _files
  fi
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then _ksctl "$@"; else compdef _ksctl ksctl; fi
`;
}

export function completionScript(shell: string | undefined): string {
  if (shell === 'bash') return bashCompletion();
  if (shell === 'zsh') return zshCompletion();
  throw new CliError('usage: ksctl completion bash|zsh', Exit.Usage);
}
