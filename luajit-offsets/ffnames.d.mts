// Types for ffnames.mjs (plain ESM so generate.sh can run it with node).
export declare const LIBRARY_MODULES: readonly string[];
export declare function ffdefName(ident: string, modules?: readonly string[]): string;
export declare function ffdefToNames(headerText: string, modules?: readonly string[]): string[];
