/**
 * `/favicon.ico`: a 16×16 icon (the storefront's accent colour, a filled circle) so browsers get
 * an image instead of a 404 on every visit. Built once, in code, as a standard ICO file holding
 * one 32-bit BMP: no binary file to ship, nothing read from disk.
 */
const SIZE = 16;
const ACCENT = { r: 0x4f, g: 0x46, b: 0xe5 };

function build(): Buffer {
  const pixels = Buffer.alloc(SIZE * SIZE * 4);
  // BMP rows run bottom-up, pixels are BGRA.
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const dx = x + 0.5 - SIZE / 2;
      const dy = y + 0.5 - SIZE / 2;
      const inside = dx * dx + dy * dy <= (SIZE / 2 - 0.5) ** 2;
      const at = ((SIZE - 1 - y) * SIZE + x) * 4;
      pixels[at] = ACCENT.b;
      pixels[at + 1] = ACCENT.g;
      pixels[at + 2] = ACCENT.r;
      pixels[at + 3] = inside ? 0xff : 0;
    }
  }
  // The AND mask (1 bit per pixel, rows padded to 4 bytes): all zero, alpha does the work.
  const mask = Buffer.alloc(SIZE * 4);
  const info = Buffer.alloc(40);
  info.writeUInt32LE(40, 0); // BITMAPINFOHEADER size
  info.writeInt32LE(SIZE, 4);
  info.writeInt32LE(SIZE * 2, 8); // ICO convention: height covers the XOR and AND masks
  info.writeUInt16LE(1, 12); // planes
  info.writeUInt16LE(32, 14); // bits per pixel
  info.writeUInt32LE(pixels.length + mask.length, 20);
  const image = Buffer.concat([info, pixels, mask]);
  const header = Buffer.alloc(6 + 16);
  header.writeUInt16LE(0, 0);
  header.writeUInt16LE(1, 2); // type: icon
  header.writeUInt16LE(1, 4); // one image
  header.writeUInt8(SIZE, 6);
  header.writeUInt8(SIZE, 7);
  header.writeUInt8(0, 8); // no palette
  header.writeUInt16LE(1, 10);
  header.writeUInt16LE(32, 12);
  header.writeUInt32LE(image.length, 14);
  header.writeUInt32LE(header.length, 18);
  return Buffer.concat([header, image]);
}

export const FAVICON_ICO: Buffer = build();
