# PNG helper for cli_conditioning_test (stdlib only): writes the inpainting mask and known image, checks a sample grid.
import sys, zlib, struct
def write(path, w, h, pix):  # pix: list of rows of grey bytes
    raw = b''.join(b'\x00' + bytes(r) for r in pix)
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
def read(path):  # 8-bit grey, any filter
    d = open(path, 'rb').read(); i = 8; idat = b''
    while i < len(d):
        n, = struct.unpack('>I', d[i:i+4]); t = d[i+4:i+8]; c = d[i+8:i+8+n]; i += 12 + n
        if t == b'IHDR': w, h, bd, ct = struct.unpack('>IIBB', c[:10])
        if t == b'IDAT': idat += c
    assert bd == 8 and ct == 0, (bd, ct)
    raw = zlib.decompress(idat); rows = []; prev = [0] * w
    for y in range(h):
        f = raw[y * (w + 1)]; line = list(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a = line[x - 1] if x else 0; b = prev[x]; c = prev[x - 1] if x else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return rows
if sys.argv[1] == 'mask':  # left half kept (black), right half generated (white)
    write(sys.argv[2], 28, 28, [[0] * 14 + [255] * 14 for _ in range(28)])
elif sys.argv[1] == 'known':  # a ramp: pixel (y, x) = 9 y
    write(sys.argv[2], 28, 28, [[9 * y] * 28 for y in range(28)])
else:  # check: the 32 x 32 grid of one sample (2-pixel padding): its left half equals the ramp
    rows = read(sys.argv[2]); bad = sum(rows[2 + y][2 + x] != 9 * y for y in range(28) for x in range(14))
    free = sum(rows[2 + y][2 + x] != 9 * y for y in range(28) for x in range(14, 28))
    print('kept_mismatches', bad, 'free_differs', free)
