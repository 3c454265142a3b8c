// The baseline for the HTTP figures: a bare express JSON echo, started as its own process by
// bench/run.ts so it is measured by the same client, in the same run, as kube-join.
import express from "express";

const app = express();
app.disable("x-powered-by");
app.use(express.json({ limit: "64kb" }));
app.post("/v1/join", (req, res) => {
  res.json(req.body);
});
const server = app.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address !== null && typeof address === "object") console.log(`listening ${address.port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
