//! Generates the v3 API's messages from etcd's `.proto` files vendored in
//! `proto/etcd` (annotations stripped by `tools/protos/strip.py`), with the
//! pure-Rust `protox` as the compiler: no `protoc` on build machines. The
//! messages etcd stores on disk (`mvccpb`, `authpb`) stay the hand-declared
//! ones of this crate, which the generated code refers to.
//!
//! With the `grpc` feature the same run also generates tonic's service
//! traits (servers) and clients next to the messages: one set of types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "etcd/etcdserver/etcdserverpb/rpc.proto",
        "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
        "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    // The descriptors themselves, for the JSON gateway's reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("etcd_api.fds"), prost::Message::encode_to_vec(&fds))?;
    // Every RPC the files declare, for per-method counters that need no
    // lookup table built at run time (and count no path that is not one).
    let mut rpcs = Vec::new();
    for file in &fds.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            for m in &service.method {
                let kind = match (m.client_streaming(), m.server_streaming()) {
                    (false, false) => "unary",
                    (true, true) => "bidi_stream",
                    (false, true) => "server_stream",
                    (true, false) => "client_stream",
                };
                rpcs.push((format!("/{name}/{}", m.name()), name.clone(), m.name().to_string(), kind));
            }
        }
    }
    rpcs.sort();
    let mut table = String::from("/// Every RPC of the API, by path (sorted): (service, method, grpc type).\n");
    table.push_str("pub const GRPC_METHODS: &[(&str, (&str, &str, &str))] = &[\n");
    for (path, service, method, kind) in &rpcs {
        table.push_str(&format!("    (\"{path}\", (\"{service}\", \"{method}\", \"{kind}\")),\n"));
    }
    table.push_str("];\n");
    std::fs::write(out.join("grpc_methods.rs"), table)?;
    let mut cfg = prost_build::Config::new();
    cfg.extern_path(".mvccpb", "crate::mvccpb").extern_path(".authpb", "crate::authpb");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_some() {
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .build_transport(false)
            .compile_fds_with_config(fds, cfg)?;
    } else {
        cfg.compile_fds(fds)?;
    }
    Ok(())
}
