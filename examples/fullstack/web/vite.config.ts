import { defineConfig } from "vite";

// `npm run dev` serves the front end with hot reload and sends the API calls to the host that
// `berth dev -c examples/fullstack/berth.toml` runs (its [server] listen); `npm run build` writes
// dist/, which that berth.toml serves with [[static]].
export default defineConfig({
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
  },
});
