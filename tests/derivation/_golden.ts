/** Vectors from Nix's own tests (src/libstore-tests/data/derivation/hash-modulo), as quoted in
 * the project's nix-reference.md section 4. */

/** Nix's golden `source-first.drv` (src/libstore-tests/data/derivation/hash-modulo). */
export const SOURCE_FIRST = 'Derive([("out","/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source",' +
  '"r:sha256","894517c9163c896ec31a2adbd33c0681fd5f45b2c0ef08a64c92a03fb97f390f")],[],[],' +
  '"x86_64-linux","/bin/first",[],[("out","/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source")])';

/** Nix's golden `intermediate-first.drv`. */
export const INTERMEDIATE_FIRST = 'Derive([("dev","/nix/store/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-' +
  'intermediate-dev","",""),("out","/nix/store/jlzxv2xpqj0adi22cy93573vyf9xr6fw-intermediate",' +
  '"","")],[("/nix/store/q4mzjdlh5px6977h7v5fdsk1p33yg583-source.drv",["out"])],[],' +
  '"x86_64-linux","/bin/intermediate",[],[("dev","/nix/store/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-' +
  'intermediate-dev"),("out","/nix/store/jlzxv2xpqj0adi22cy93573vyf9xr6fw-intermediate")])';
