#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Retention of an audit chain in Redis, run by warden-audit-retention.timer: export the
# Merkle tree and entries at the newest stored signed checkpoint into the archive directory
# (audit-export --tiles: only what is new is written), then trim from Redis everything but
# the newest AUDIT_RETENTION_KEEP entries of that checkpoint (audit-trim: it removes nothing
# unless the archive holds those entries and verifies against the checkpoint, and auditd has
# recorded the trim in the chain as audit.trimmed). Publish the archive with any static file
# server; auditors verify it with audit-verify --tiles (docs/auditing.md).
#
# Settings (environment; the unit reads them from /etc/warden/audit-retention.env):
#   AUDIT_CHAIN            chain (default: default)
#   AUDIT_ARCHIVE_DIR      the archive, kept for as long as the policy says (required)
#   AUDIT_RETENTION_KEEP   entries left in Redis, counted back from the checkpoint (default
#                          1000000; 0 keeps nothing but what came after the checkpoint)
#   AUDIT_KEYRING          the keyring the archive is checked with (required)
#   AUDITD_URL             an auditd of the chain: http://host:port or unix:/path (required)
#   AUDITOR_REDIS_URL_FILE    Redis URL of the read-only auditor user, for the export
#   AUDITTRIM_REDIS_URL_FILE  Redis URL of the audittrim user, for the trim
#   ADMIN_TOKEN_FILE       auditd's admin token (POST /v1/admin/trim)
#   AUDIT_BIN              where warden-audit-export and warden-audit-trim are (default:
#                          /usr/local/bin; a checkout's build/bin with their short names works too)
# Exit status: 0 done (or nothing to trim yet), else the failing tool's.
set -eu
. "$(dirname "$0")/common.sh"
chain=${AUDIT_CHAIN:-default}
keep=${AUDIT_RETENTION_KEEP:-1000000}
bin=${AUDIT_BIN:-/usr/local/bin}
: "${AUDIT_ARCHIVE_DIR:?set AUDIT_ARCHIVE_DIR}" "${AUDIT_KEYRING:?set AUDIT_KEYRING}"
: "${AUDITD_URL:?set AUDITD_URL}" "${AUDITOR_REDIS_URL_FILE:?}" "${AUDITTRIM_REDIS_URL_FILE:?}"
case $keep in '' | *[!0-9]*) echo "audit-retention: AUDIT_RETENTION_KEEP=$keep: not a number" >&2; exit 3 ;; esac

# The URLs go through the environment, never the command line (ps shows that).
REDIS_URL=$(cat "$AUDITOR_REDIS_URL_FILE") "$(warden_bin "$bin" audit-export)" --chain "$chain" \
    --tiles "$AUDIT_ARCHIVE_DIR"
size=$(sed -n 2p "$AUDIT_ARCHIVE_DIR/checkpoint")
case $size in '' | *[!0-9]*) echo "audit-retention: the archive's checkpoint has no size" >&2; exit 3 ;; esac
before=$((size - keep + 1))
if [ "$before" -lt 2 ]; then
    echo "audit-retention: chain $chain has $size entries at its checkpoint: nothing to trim yet"
    exit 0
fi
REDIS_URL=$(cat "$AUDITTRIM_REDIS_URL_FILE") "$(warden_bin "$bin" audit-trim)" --chain "$chain" \
    --tiles "$AUDIT_ARCHIVE_DIR" --keys "$AUDIT_KEYRING" --before-seq "$before" \
    --auditd "$AUDITD_URL"
