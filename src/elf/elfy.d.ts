// Minimal declaration for elfy 1.0.0 (CommonJS, no bundled types), covering
// only what elf-file.ts uses. Numbers are JS numbers (64-bit fields are read
// as lo + hi * 2^32, exact below 2^53). On 64-bit files elfy reads a
// section's addralign/entsize from the wrong offsets: do not use them.
declare module 'elfy' {
  namespace elfy {
    interface Header {
      class: '32' | '64';
      endian: 'lsb' | 'msb';
      osabi: string;
      abiversion: unknown;
      /** 'none' | 'rel' | 'exec' | 'dyn' | 'core', or undefined if unknown. */
      type: string | undefined;
      machine: string | undefined;
      version: number;
      entry: number;
      phoff: number;
      shoff: number;
      flags: number;
      ehsize: number;
      phentsize: number;
      phnum: number;
      shentsize: number;
      shnum: number;
      shstrndx: number;
    }
    interface Program {
      /** 'load' | 'note' | 'dynamic' | ... or undefined if unknown. */
      type: string | undefined;
      offset: number;
      vaddr: number;
      paddr: number;
      filesz: number;
      memsz: number;
      /** e.g. { r: true, x: true } */
      flags: Record<string, boolean>;
      align: number;
      data: Buffer;
    }
    interface Section {
      /** Index into shstrtab until resolveBody replaces it with the name. */
      name: string | number;
      /** 'progbits' | 'symtab' | 'dynsym' | 'note' | 'nobits' | ..., or the raw number. */
      type: string | number;
      flags: Record<string, boolean>;
      addr: number;
      off: number;
      size: number;
      link: number;
      info: number;
      addralign: number;
      entsize: number;
      data: Buffer;
    }
    interface Body {
      programs: Program[];
      sections: Section[];
    }
    interface Elf extends Header {
      body: Body;
    }
    class Parser {
      constructor();
      execute(buf: Buffer): Elf;
      parseHeader(buf: Buffer): Header;
      parseBody(buf: Buffer, header: Header): Body;
      resolveBody(body: Body, header: Header): Body;
    }
    function parse(buf: Buffer): Elf;
  }
  export = elfy;
}
