// Stands in for the server.js that `next build` (output: "standalone") writes.
const http = require("http");
const port = Number(process.env.PORT || 3000);
http
  .createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("my-nextjs-app\n");
  })
  .listen(port, "0.0.0.0");
