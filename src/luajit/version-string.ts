// The version a LuaJIT library says it is: the LUAJIT_VERSION string
// ("LuaJIT 2.1.0-beta3", "LuaJIT 2.1.1710398010") that jit.version returns,
// stored as a C string in .rodata. Rolling releases (luajit2 since late 2023,
// upstream 2.1) put their commit time in it, so it names the release; older
// luajit2 releases all say "2.1.0-beta3".
import { getSection } from '../elf/elf-file.js';
import type { ElfObject } from '../elf/elf-cache.js';

// A whole C string: NUL before and after, so the banner luajit.c prints
// ("LuaJIT 2.1.0-beta3 -- Copyright ...") is not taken for it.
const VERSION_STRING = /\0(LuaJIT \d+\.\d+\.[0-9A-Za-z.+~-]{1,40})\0/;

/** The first LUAJIT_VERSION string in bytes (a .rodata section), or null. */
export function findLuajitVersion(bytes: Buffer): string | null {
  const m = VERSION_STRING.exec(bytes.toString('latin1'));
  return m ? m[1] : null;
}

/** The version string of a mapped LuaJIT object, from .rodata (the whole file when it has no section table). */
export function luajitVersionOf(object: Pick<ElfObject, 'buf' | 'info'>): string | null {
  const rodata = getSection(object.info, '.rodata');
  return findLuajitVersion(rodata && rodata.data.length > 0 ? rodata.data : object.buf);
}

/**
 * The version a rolling LuaJIT's file name carries ("2.1.1710398010"):
 * make install names the library libluajit-5.1.so.<major>.<minor>.<relver>.
 * null when it has none (libluajit-5.1.so.2.1.0 of the beta3 releases, or a
 * renamed file).
 */
export function fileNameRelease(fileName: string): string | null {
  const m = /\.so\.(\d+)\.(\d+)\.(\d{6,})$/.exec(fileName);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}
