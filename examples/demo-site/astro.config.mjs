import { defineConfig } from "astro/config";

export default defineConfig({
  // Stylesheets as content-hashed files under _astro/, as a real site of any size gets them.
  build: { inlineStylesheets: "never" },
});
