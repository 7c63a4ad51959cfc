import { defineConfig } from "vite";

// Builds the console into dist/console (the gateway serves it at /): `vite build console`
// (npm run build:console), whose root, and so the base of these paths, is this folder.
// JSX is Preact's, by the automatic runtime.
export default defineConfig({
  base: "./",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../dist/console",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
});
