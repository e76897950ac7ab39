// The entry point of web/static/age.js: the parts of age-encryption the
// portal's pages use, re-exported so that esbuild keeps only what they need.
export { Decrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
