#!/usr/bin/env python3
"""Writes the fuzz seed corpus: small valid files for every parser, under fuzz/corpus/<target>/.

Standard library only (struct, zlib, os), and deterministic: every run writes the same bytes (gzip headers carry no
timestamp; pixels come from fixed formulas), so the committed corpus can be regenerated and diffed.

Seeds use the same input encodings as the targets:
  idx, stl10   4-byte little-endian length of the first file, the first file, then the second file
  cifar        one byte choosing the variant (0 CIFAR-10, 1 CIFAR-100 fine, 2 CIFAR-100 coarse), then the file
  mat5, safetensors, image   the file itself
Usage: python3 fuzz/make_corpus.py   (writes next to this script)
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def pair(first, second):
    return struct.pack("<I", len(first)) + first + second


def pattern(n, seed):
    """n bytes of a fixed, varied pattern."""
    return bytes((i * 37 + seed * 101 + (i >> 5) * 11) & 0xFF for i in range(n))


def gzip_bytes(data):
    """A gzip member with mtime 0 and no file name, so the output depends only on the data (and zlib)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    return header + body + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


# ---------------------------------------------------------------------------------------------------------- idx
def idx_images(n, h, w):
    return struct.pack(">IIII", 0x803, n, h, w) + pattern(n * h * w, 1)


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def make_idx():
    images, labels = idx_images(3, 5, 4), idx_labels([0, 9, 4])
    write("idx", "raw_3x5x4", pair(images, labels))
    write("idx", "gzip_both", pair(gzip_bytes(images), gzip_bytes(labels)))
    write("idx", "gzip_images_raw_labels", pair(gzip_bytes(images), labels))
    # gzip allows several members back to back; the decoder must join them.
    half = len(images) // 2
    write("idx", "gzip_two_members", pair(gzip_bytes(images[:half]) + gzip_bytes(images[half:]), gzip_bytes(labels)))
    write("idx", "raw_1x28x28", pair(idx_images(1, 28, 28), idx_labels([7])))


# -------------------------------------------------------------------------------------------------------- cifar
def make_cifar():
    c10 = b"".join(bytes([label]) + pattern(3072, label) for label in (3, 9))
    write("cifar", "cifar10_2", b"\x00" + c10)
    c100 = b"".join(bytes([coarse, fine]) + pattern(3072, fine) for coarse, fine in ((19, 99), (0, 42)))
    write("cifar", "cifar100_fine_2", b"\x01" + c100)
    write("cifar", "cifar100_coarse_2", b"\x02" + c100)


# --------------------------------------------------------------------------------------------------------- mat5
MI_INT8, MI_UINT8, MI_INT32, MI_UINT32, MI_DOUBLE, MI_MATRIX, MI_COMPRESSED = 1, 2, 5, 6, 9, 14, 15
MX_DOUBLE, MX_UINT8 = 6, 9


def mat_element(mi_type, data, small=False):
    """A data element: tag (type, byte count) then the data padded to 8 bytes; `small` packs up to 4 bytes into
    the tag itself (the "small data element" format MATLAB uses for short names)."""
    if small:
        assert len(data) <= 4
        return struct.pack("<HH", mi_type, len(data)) + data + b"\x00" * (4 - len(data))
    return struct.pack("<II", mi_type, len(data)) + data + b"\x00" * (-len(data) % 8)


def mat_matrix(name, mx_class, dims, mi_type, data, small_name=False):
    flags = mat_element(MI_UINT32, struct.pack("<II", mx_class, 0))
    dimensions = mat_element(MI_INT32, struct.pack("<%di" % len(dims), *dims))
    body = flags + dimensions + mat_element(MI_INT8, name.encode(), small_name) + mat_element(mi_type, data)
    return struct.pack("<II", MI_MATRIX, len(body)) + body


def mat_header():
    text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970"
    return text.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0100) + b"IM"


def svhn_x(n):
    """X as MATLAB stores it: uint8 32x32x3xN, column-major (the row index varies fastest)."""
    return pattern(32 * 32 * 3 * n, 5)


def make_mat5():
    n, labels = 2, (10, 3)  # 10 is SVHN's digit 0
    x = mat_matrix("X", MX_UINT8, (32, 32, 3, n), MI_UINT8, svhn_x(n))
    y_double = mat_matrix("y", MX_DOUBLE, (n, 1), MI_DOUBLE, struct.pack("<%dd" % n, *labels))
    write("mat5", "svhn_uncompressed", mat_header() + x + y_double)
    # As MATLAB writes SVHN: each array in its own zlib element, no padding after it, short names packed into the
    # tag, and the double labels stored as miUINT8 because they are small integers.
    x_small = mat_matrix("X", MX_UINT8, (32, 32, 3, n), MI_UINT8, svhn_x(n), small_name=True)
    y_u8 = mat_matrix("y", MX_DOUBLE, (n, 1), MI_UINT8, bytes(labels), small_name=True)
    compressed = b""
    for element in (x_small, y_u8):
        z = zlib.compress(element, 9)
        compressed += struct.pack("<II", MI_COMPRESSED, len(z)) + z
    write("mat5", "svhn_compressed", mat_header() + compressed)


# -------------------------------------------------------------------------------------------------------- stl10
def make_stl10():
    # One image is 3x96x96 = 27648 bytes, so the seeds hold a single image each.
    write("stl10", "one_image_label1", pair(pattern(3 * 96 * 96, 7), b"\x01"))
    write("stl10", "one_image_label10", pair(pattern(3 * 96 * 96, 8), b"\x0a"))


# -------------------------------------------------------------------------------------------------- safetensors
def safetensors(header_json, data):
    header = header_json.encode()
    header += b" " * (-len(header) % 8)  # the reference writer pads so the data starts 8-aligned
    return struct.pack("<Q", len(header)) + header + data


def make_safetensors():
    write("safetensors", "one_f32",
          safetensors('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}',
                      struct.pack("<2f", 1.5, -2.0)))
    write("safetensors", "f32_i64_empty",
          safetensors('{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
                      '"n":{"dtype":"I64","shape":[],"data_offsets":[16,24]},'
                      '"z":{"dtype":"F32","shape":[0,3],"data_offsets":[24,24]},'
                      '"__metadata__":{"arch":"lenet5","mean":"0.5"}}',
                      struct.pack("<4fq", 0.0, 1.0, 2.0, 3.0, 7)))
    # Regression: a number too large for a double once escaped as nlohmann's out_of_range, not an InputError.
    write("safetensors", "number_overflow",
          safetensors('{"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}}', b"\x00" * 4))


# -------------------------------------------------------------------------------------------------------- image
def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, color_type, channels, rows, filters, palette=None):
    """An 8-bit PNG; `rows` are unfiltered scanlines, each stored with the filter type given for it."""
    raw = b""
    prev = bytes(width * channels)
    for row, ftype in zip(rows, filters):
        out = bytearray()
        for i, value in enumerate(row):
            left = row[i - channels] if i >= channels else 0
            up = prev[i]
            upleft = prev[i - channels] if i >= channels else 0
            if ftype == 0:
                predictor = 0
            elif ftype == 1:
                predictor = left
            elif ftype == 2:
                predictor = up
            elif ftype == 3:
                predictor = (left + up) // 2
            else:  # Paeth
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
            out.append((value - predictor) & 0xFF)
        raw += bytes([ftype]) + bytes(out)
        prev = row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr)
    if palette is not None:
        chunks += png_chunk(b"PLTE", palette)
    chunks += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def bmp(width, height, bits, pixel_rows, palette=b""):
    """A bottom-up BITMAPINFOHEADER BMP; `pixel_rows` are top to bottom, already in BMP's byte order."""
    row_bytes = (width * bits + 31) // 32 * 4
    data = b"".join(row + b"\x00" * (row_bytes - len(row)) for row in reversed(pixel_rows))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(data), 2835, 2835,
                       len(palette) // 4, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


ZIGZAG_LEN = 64


def jpeg_baseline(width, height, components, blocks_per_mcu_order, coefficients, extra_dht=b"", scan_tables=0x00):
    """A baseline (SOF0) JPEG written from quantised DCT coefficients, so no DCT is needed here.

    components: list of (id, h, v); all share quantisation table 0 (all 4s) and Huffman tables 0. The Huffman
    tables are valid but not the standard ones: every DC category 0..11 gets a 4-bit code, and every AC symbol
    (EOB, ZRL, run/size 0..15 x 1..10) an 8-bit code. blocks_per_mcu_order lists the component index of each
    block in scan order; coefficients gives each block's coefficients in zigzag order (missing ones are 0).
    extra_dht is appended to the DHT segment as further (raw) table definitions. scan_tables is the scan header's
    DC/AC table selector byte for every component.
    """
    dc_symbols = list(range(12))
    ac_symbols = [0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 11)]
    dc_codes = {s: (i, 4) for i, s in enumerate(dc_symbols)}
    ac_codes = {s: (i, 8) for i, s in enumerate(ac_symbols)}

    bits = []

    def put(value, length):
        for k in range(length - 1, -1, -1):
            bits.append((value >> k) & 1)

    def category(v):
        return abs(v).bit_length()

    def magnitude_bits(v, s):
        return v if v >= 0 else v + (1 << s) - 1

    previous_dc = [0] * len(components)
    for comp, coefs in zip(blocks_per_mcu_order, coefficients):
        coefs = list(coefs) + [0] * (ZIGZAG_LEN - len(coefs))
        diff = coefs[0] - previous_dc[comp]
        previous_dc[comp] = coefs[0]
        s = category(diff)
        put(*dc_codes[s])
        put(magnitude_bits(diff, s), s)
        run = 0
        for k in range(1, ZIGZAG_LEN):
            if coefs[k] == 0:
                run += 1
                continue
            while run > 15:
                put(*ac_codes[0xF0])
                run -= 16
            s = category(coefs[k])
            put(*ac_codes[(run << 4) | s])
            put(magnitude_bits(coefs[k], s), s)
            run = 0
        if run:
            put(*ac_codes[0x00])
    bits.extend([1] * (-len(bits) % 8))  # pad the last byte with ones
    scan = bytearray()
    for i in range(0, len(bits), 8):
        byte = 0
        for b in bits[i:i + 8]:
            byte = (byte << 1) | b
        scan.append(byte)
        if byte == 0xFF:
            scan.append(0x00)  # byte stuffing

    def segment(marker, payload):
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    dqt = segment(0xDB, b"\x00" + bytes([4] * 64))
    sof = segment(0xC0, struct.pack(">BHHB", 8, height, width, len(components)) +
                  b"".join(struct.pack(">BBB", cid, (h << 4) | v, 0) for cid, h, v in components))

    def table(tc, symbols, length):
        counts = [0] * 16
        counts[length - 1] = len(symbols)
        return bytes([tc << 4]) + bytes(counts) + bytes(symbols)

    dht = segment(0xC4, table(0, dc_symbols, 4) + table(1, ac_symbols, 8) + extra_dht)
    sos = segment(0xDA, bytes([len(components)]) + b"".join(bytes([cid, scan_tables]) for cid, _, _ in components) +
                  b"\x00\x3f\x00")
    return b"\xff\xd8" + dqt + sof + dht + sos + bytes(scan) + b"\xff\xd9"


def make_image():
    # PNG: RGB 4x3 using all five row filters across the seeds, gray 3x3, RGBA 2x2, palette 3x2.
    rgb_rows = [bytes(((x * 60 + y * 25 + c * 90) & 0xFF) for x in range(4) for c in range(3)) for y in range(3)]
    write("image", "rgb_4x3.png", png(4, 3, 2, 3, rgb_rows, [0, 1, 4]))
    gray_rows = [bytes(((x * 100 + y * 40) & 0xFF) for x in range(3)) for y in range(3)]
    write("image", "gray_3x3.png", png(3, 3, 0, 1, gray_rows, [2, 3, 4]))
    rgba_rows = [b"".join(bytes([200, 10 * y + 50 * x, 30 * x, 255 - 100 * x]) for x in range(2)) for y in range(2)]
    write("image", "rgba_2x2.png", png(2, 2, 6, 4, rgba_rows, [1, 2]))
    palette = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])
    write("image", "palette_3x2.png", png(3, 2, 3, 1, [bytes([0, 1, 2]), bytes([2, 1, 0])], [0, 0], palette))
    # BMP: 24-bit 3x2 (rows padded to 4 bytes) and 8-bit paletted 2x2.
    bgr_rows = [bytes([10, 20, 30, 40, 50, 60, 70, 80, 90]), bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])]
    write("image", "bgr24_3x2.bmp", bmp(3, 2, 24, bgr_rows))
    gray_palette = b"".join(bytes([v, v, v, 0]) for v in (0, 85, 170, 255))
    write("image", "pal8_2x2.bmp", bmp(2, 2, 8, [bytes([0, 3]), bytes([1, 2])], gray_palette))
    # JPEG: grayscale 16x8 (two blocks) and YCbCr 4:2:0 16x16 (one MCU: four Y blocks, then Cb, then Cr).
    write("image", "gray_16x8.jpg",
          jpeg_baseline(16, 8, [(1, 1, 1)], [0, 0], [[20, 12, -7, 0, 3], [-15, 0, 0, 9] + [0] * 20 + [-2]]))
    write("image", "ycc420_16x16.jpg",
          jpeg_baseline(16, 16, [(1, 2, 2), (2, 1, 1), (3, 1, 1)], [0, 0, 0, 0, 1, 2],
                        [[10, 5, -3], [12, 0, 4], [-20, 1], [0, 0, 0, 6], [8, -2], [-6, 0, 3]]))
    # Regression: a DHT table declaring more than 256 codes (here 2 x 255) overran stb_image 2.27's tables.
    oversized_table = bytes([0x11]) + bytes([0] * 14 + [255, 255]) + bytes(i & 0xFF for i in range(510))
    write("image", "regress_dht_510_codes.jpg",
          jpeg_baseline(16, 8, [(1, 1, 1)], [0, 0], [[20], [-15]], extra_dht=oversized_table))
    # Regression: a scan decoding with Huffman tables no DHT defined (DC 3, AC 3) read stb_image 2.27's uninitialised
    # tables, and a symbol index past their end.
    write("image", "regress_jpeg_undefined_huffman.jpg",
          jpeg_baseline(16, 8, [(1, 1, 1)], [0, 0], [[20], [-15]], scan_tables=0x33))


def main():
    make_idx()
    make_cifar()
    make_mat5()
    make_stl10()
    make_safetensors()
    make_image()


if __name__ == "__main__":
    main()
