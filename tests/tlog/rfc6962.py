#!/usr/bin/env python3
"""rfc6962: an independent check of auditd's Merkle tree, written from RFC 6962 and RFC 9162
with nothing but Python's standard library. Over HTTP it reads every entry body, computes the
root of every prefix of the log, and checks against them: the checkpoints given (tree size,
root, and the chain head on the "chain" extension line), auditd's inclusion and consistency
proofs (with RFC 9162's verification algorithms), and every hash tile and entry bundle
(recomputed here, byte for byte).

    rfc6962.py --log http://127.0.0.1:8082/v1/ [--tiles http://127.0.0.1:8082/] [--token T] [--every K] [CHECKPOINT ...]

--every K checks the proofs of every K-th tree size (1: every size, every leaf of small
trees). Exit 0 when everything checks, 1 with the first problem on stderr.
"""
import argparse
import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves, lo, hi):
    """MTH(D[lo:hi]) by the definition (RFC 6962 section 2.1)."""
    if hi - lo == 1:
        return leaves[lo]
    k = 1
    while k * 2 < hi - lo:
        k *= 2
    return node_hash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi))


def prefix_roots(leaves):
    """roots[n] = MTH(D[0:n]) for n = 1..len(leaves), from a running stack of subtrees."""
    roots, stack = [None], []  # stack of (height, hash)
    for i, h in enumerate(leaves):
        stack.append((0, h))
        n = i + 1
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (height, right), (_, left) = stack.pop(), stack.pop()
            stack.append((height + 1, node_hash(left, right)))
        root = stack[-1][1]
        for _, h2 in reversed(stack[:-1]):
            root = node_hash(h2, root)
        roots.append(root)
        assert n == len(roots) - 1
    return roots


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 section 2.1.4.2."""
    if first == second:
        return not proof and first_hash == second_hash
    if not proof or first > second:
        return False
    if first & (first - 1) == 0:
        proof = [first_hash] + list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


class Log:
    def __init__(self, url, tiles, token):
        self.url, self.tiles, self.token = url, tiles, token

    def get(self, path):
        # tiles where tlog-tiles puts them (their own prefix), the rest under the API's
        base = self.tiles if path.startswith("tile/") else self.url
        req = urllib.request.Request(base + path)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, path):
        status, body = self.get(path)
        if status != 200:
            fail("GET %s: %d %s" % (path, status, body[:200]))
        return json.loads(body)


def fail(msg):
    print("rfc6962: " + msg, file=sys.stderr)
    sys.exit(1)


def tile_path(level, index, width):
    groups = "%03d" % (index % 1000)
    index //= 1000
    while index > 0:
        groups = "x%03d/%s" % (index % 1000, groups)
        index //= 1000
    name = "entries" if level < 0 else str(level)
    return "tile/%s/%s" % (name, groups) + ("" if width == 256 else ".p/%d" % width)


def check_tiles(log, bodies, leaves, size):
    """Every hash tile and entry bundle of the tree of `size` leaves, recomputed here."""
    count, level, hashes = 0, 0, leaves[:size]
    while hashes:
        for t in range(0, (len(hashes) + 255) // 256):
            want = b"".join(hashes[t * 256:(t + 1) * 256])
            path = tile_path(level, t, len(want) // 32)
            status, got = log.get(path)
            if status != 200 or got != want:
                fail("%s: %d, %d bytes, not the %d recomputed" % (path, status, len(got), len(want)))
            count += 1
        # the next level holds the roots of the full tiles of this one
        hashes = [mth(hashes, i * 256, i * 256 + 256) for i in range(len(hashes) // 256)]
        level += 1
    for t in range(0, (size + 255) // 256):
        entries = bodies[t * 256:min(size, (t + 1) * 256)]
        want = b"".join(len(e).to_bytes(2, "big") + e for e in entries)
        path = tile_path(-1, t, len(entries))
        status, got = log.get(path)
        if status != 200 or got != want:
            fail("%s: %d, not the bundle of entries %d.." % (path, status, t * 256 + 1))
        count += 1
    return count


def check_checkpoint(path, roots, chain):
    """A checkpoint note: its root is the one of its size, its chain line the chain's head.
    (Its signature is Go's note package's to check.)"""
    text = open(path, "rb").read().decode().split("\n\n")[0].split("\n")
    size, root = int(text[1]), base64.b64decode(text[2])
    if size >= len(roots) or roots[size] != root:
        fail("%s: root of size %d is not the one recomputed" % (path, size))
    line = [l for l in text[3:] if l.startswith("chain ")]
    if len(line) != 1 or line[0] != "chain %d %s" % (size, chain[size]):
        fail("%s: chain line %s, wanted chain %d %s" % (path, line, size, chain[size]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--tiles", default=None, help="the tiles' URL prefix (default: --log)")
    ap.add_argument("--token", default="")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("checkpoints", nargs="*")
    a = ap.parse_args()
    log = Log(a.log, a.tiles or a.log, a.token)
    bodies, chain = [], {0: "0" * 64}
    nxt = 1
    while nxt:
        page = log.json("events?from_seq=%d&limit=1000" % nxt)
        for e in page["entries"]:
            if e["seq"] != len(bodies) + 1:
                fail("entries out of order at seq %d" % e["seq"])
            bodies.append(e["body"].encode())
            chain[e["seq"]] = e["hash"]
        nxt = page["next_from_seq"]
    size = len(bodies)
    leaves = [leaf_hash(b) for b in bodies]
    roots = prefix_roots(leaves)
    if size <= 64 and any(roots[n] != mth(leaves, 0, n) for n in range(1, size + 1)):
        fail("the running roots disagree with the definition")
    for cp in a.checkpoints:
        check_checkpoint(cp, roots, chain)
    proofs = 0
    sizes = list(range(1, size + 1, a.every)) + ([size] if (size - 1) % a.every else [])
    for n in sizes:
        for m in (range(n) if n <= 32 else [(n * 7919) % n, n - 1]):
            doc = log.json("proofs/inclusion?seq=%d&tree_size=%d" % (m + 1, n))
            proof = [base64.b64decode(h) for h in doc["hashes"]]
            if doc["leaf_index"] != m or doc["tree_size"] != n or \
                    not verify_inclusion(m, n, leaves[m], proof, roots[n]):
                fail("inclusion of leaf %d in %d does not verify: %s" % (m, n, doc))
            if proof and verify_inclusion(m, n, leaves[(m + 1) % n], proof, roots[n]) and n > 1:
                fail("inclusion of leaf %d in %d verifies another leaf" % (m, n))
            proofs += 1
        for old in (range(1, n + 1) if n <= 32 else [1 + (n * 104729) % n, n - 1]):
            doc = log.json("proofs/consistency?from=%d&to=%d" % (old, n))
            proof = [base64.b64decode(h) for h in doc["hashes"]]
            if not verify_consistency(old, n, roots[old], roots[n], proof):
                fail("consistency %d..%d does not verify: %s" % (old, n, doc))
            if old < n and verify_consistency(old, n, roots[n], roots[n], proof):
                fail("consistency %d..%d verifies a wrong old root" % (old, n))
            proofs += 1
    tiles = check_tiles(log, bodies, leaves, size)
    print("ok: %d leaves, %d checkpoints, %d proofs, %d tiles and bundles" %
          (size, len(a.checkpoints), proofs, tiles))


if __name__ == "__main__":
    main()
