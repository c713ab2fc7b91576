"""Writes the seed corpora of the fuzz targets (fuzz/corpus/convert, fuzz/corpus/decode): the hostile and
real-world shapes the converter must survive. Each seed is two option bytes (see
converter/tests/invariants/mod.rs, `Case::from_bytes`) followed by the input. Deterministic:
re-running it rewrites the same files."""
import gzip, hashlib, io, json, os, struct, zlib

CORPUS = os.path.join(os.path.dirname(__file__), "corpus")

def zstd_frame_store(payload: bytes) -> bytes:
    # A zstd frame with one raw (uncompressed) block: magic, frame header (single segment,
    # 1-byte content size when < 256), block header (last, raw, size).
    assert len(payload) < 256
    header = bytes([0x20, len(payload)])  # FHD: single segment, FCS 1 byte
    block = ((len(payload) << 3) | 1).to_bytes(3, "little")  # last block, raw
    return b"\x28\xb5\x2f\xfd" + header + block + payload

def skippable(payload: bytes) -> bytes:
    return struct.pack("<II", 0x184D2A50, len(payload)) + payload

seeds = {
    "plain": b'{"id":1,"name":"a","ok":true}\n{"id":2,"name":"b","ok":false}\n',
    "nested": b'{"u":{"id":1,"tags":["a","b"],"geo":{"lat":1.5,"lon":-2}},"items":[{"sku":"x","q":2}]}\n{"u":null,"items":[]}\n',
    "big_ints": b'{"n":123456789012345678}\n{"n":9007199254740993}\n{"n":-9223372036854775808}\n{"n":18446744073709551616}\n',
    "int_float": b'{"x":1}\n{"x":1.5}\n{"x":-0}\n{"x":1e400}\n{"x":-0.0}\n',
    "deep_lists": b'{"d":' + b"[" * 60 + b"1" + b"]" * 60 + b"}\n{\"d\":null}\n",
    "deep_objects": b'{"d":' + b'{"a":' * 120 + b"1" + b"}" * 120 + b"}\n",
    "long_key": b'{"' + b"k" * 300 + b'":1}\n{"ok":1}\n',
    "case_keys": b'{"id":1,"Id":2,"ID":3}\n{"Platform":"a","platform":"b"}\n',
    "dup_keys": b'{"a":1,"a":2}\n{"a":3}\n',
    "bad_utf8": b'{"s":"\xff\xfe"}\n{"s":"ok"}\n',
    "surrogates": b'{"s":"\\ud800"}\n{"s":"\\udc00"}\n{"s":"\\ud83d\\ude00"}\n',
    "bom": b'\xef\xbb\xbf{"a":1}\n{"a":2}\n',
    "pretty": b'{\n  "a": 1,\n  "b": [1, 2]\n}\n',
    "array_doc": b'[{"a":1},{"a":2}]\n',
    "blank_crlf": b'{"a":1}\r\n\r\n   \n{"a":2}\r\n',
    "no_final_newline": b'{"a":1}\n{"a":2}',
    "empty": b"",
    "only_blank": b"\n\n  \n",
    "scalars": b'1\n"x"\nnull\ntrue\n[1,2]\n{"a":1}\n',
    "type_conflict": b'{"v":"1"}\n{"v":1}\n{"v":{"a":1}}\n{"v":[1]}\n{"v":true}\n',
    "timestamps": b'{"t":"2026-11-25T10:15:02Z"}\n{"t":"2026-11-25T10:15:02.123456+02:00"}\n{"t":"2026-11-25"}\n{"t":"not a time"}\n',
    "numeric_keys": b'{"m":{' + b",".join(b'"%d":%d' % (i, i) for i in range(1, 101)) + b"}}\n",
    "sparse": b"".join(b'{"k%d":%d}\n' % (i, i) for i in range(200)),
    "long_line": b'{"s":"' + b"x" * 500 + b'"}\n{"s":"short"}\n',
    "escapes": b'{"s":"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0000\\u00e9"}\n',
    "unicode": '{"s":"héllo wörld 日本語 🎉"}\n'.encode(),
    "truncated": b'{"a":1}\n{"a":',
    "garbage": bytes(range(256)),
    "nul_bytes": b'{"a":1}\x00\n\x00\x00\n',
    "huge_exponent": b'{"f":1e308}\n{"f":-1e-320}\n{"f":0.1}\n',
    "nulls_everywhere": b'{"a":null,"b":[null],"c":{"d":null}}\n{"a":1,"b":[1],"c":{"d":"x"}}\n',
    "empty_objects": b'{"o":{},"l":[]}\n{}\n',
    "gzip": gzip.compress(b'{"a":1}\n{"a":2}\n', mtime=0),
    "gzip_padded": gzip.compress(b'{"a":1}\n', mtime=0) + b"\x00" * 16,
    "gzip_truncated": gzip.compress(b'{"a":1}\n' * 50, mtime=0)[:-10],
    "zstd": zstd_frame_store(b'{"a":1}\n{"a":2}\n'),
    "zstd_skippable": skippable(b"pzstd") + zstd_frame_store(b'{"a":1}\n'),
    "xz_magic": b"\xfd7zXZ\x00" + b"\x00" * 20,
    "bzip2_magic": b"BZh91AY&SY" + b"\x00" * 20,
    # Keys that are data: more than 1,000 distinct keys under one object become a MAP column.
    "map_one_line": b'{"id":1,"m":{' + b",".join(b'"%d":%d' % (i, i) for i in range(1100)) + b"}}\n{\"id\":2,\"m\":null}\n",
    "map_across_lines": b"".join(
        b'{"m":{' + b",".join(b'"k%d":%s' % (r * 300 + i, [b"1", b'"s"', b'{"x":1.5}', b"[true]"][(r + i) % 4]) for i in range(300)) + b"}}\n"
        for r in range(4)
    ),
    "map_nested_values": b"".join(
        b'{"a":{"b":{' + b",".join(b'"%d":{"v":{"w%d":%d}}' % (r * 550 + i, i % 3, i) for i in range(550)) + b"}}}\n"
        for r in range(2)
    ),
    "map_bad_entries": b'{"m":{' + b",".join(b'"%d":%d' % (i, i) for i in range(1001)) + b'}}\n{"m":{"1":1,"1":2}}\n{"m":{"A":1,"a":2}}\n{"m":{"' + b"k" * 300 + b'":1}}\n{"m":{"x":"text"}}\n',
    # Rare top-level keys: with the 2-key threshold some option bytes draw (Case::from_bytes),
    # an overflow column; `_overflow` is also a frequent key of the records, and two lines
    # repeat a rare key. Small on purpose: a seed of more than 1,000 keys (the default
    # threshold) steered the decoder target to wide schemas decoded in 64-byte chunks, eight
    # times slower per run. Convert target only (the decoder target keeps the default).
    "sparse_root": b"".join(
        b'{"id":%d,' % r + (b'"_overflow":"own",' if r % 2 else b"") + b",".join(b'"k%d":%d' % (r * 3 + i, i) for i in range(3)) + b"}\n"
        for r in range(40)
    ) + b'{"id":1,"k5":1,"K5":2}\n{"id":2,"k7":1,"k7":{"x":1}}\n',
    "wide": b"".join(b"{" + b",".join(b'"c%d":%d.5' % (c, r) for c in range(150)) + b"}\n" for r in range(3)),
}

CONVERT_ONLY = {"sparse_root"}

def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:12]
    with open(os.path.join(directory, f"{name}-{digest}"), "wb") as f:
        f.write(data)

def main():
    for name, body in seeds.items():
        # convert: two option bytes first (several combinations per shape); decode: the body.
        # 96: quarantine, values checked, map and overflow threshold of two keys.
        for a, b in ((0, 0), (1, 7), (6, 200), (25, 40), (96, 3)):
            write("convert", name, bytes([a, b]) + body)
        if name not in CONVERT_ONLY:
            write("decode", name, body)

if __name__ == "__main__":
    main()
