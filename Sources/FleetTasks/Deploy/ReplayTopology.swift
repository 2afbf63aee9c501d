import Fleet

extension ReplayServiceDefinition {
    /// goreplay's command line for `host` in the inventory's topology: each
    /// capture host replays itself (no `fan_in`), or capture hosts forward to
    /// the `fan_in` replayer, which replays to the targets.
    static func topologyArguments(
        _ settings: ReplaySettings, host: FleetHost, inventory: Inventory
    ) throws(DeployError) -> [String] {
        if let fanIn = settings.fanIn, fanIn.isReplayer(host) {
            var argv = ["--input-tcp", ":\(fanIn.port)"]
            for target in fanIn.targets { argv += ["--output-http", target] }
            return argv + fanIn.extraArgs
        }
        guard let args = settings.arguments(for: host) else {
            throw DeployError(
                host: host.name, reason: "no replay arguments for \(host.name) or any of its puppet classes",
                remedy: "add an entry under replay.args for one of: \(host.puppetClasses.joined(separator: ", "))")
        }
        guard let fanIn = settings.fanIn else { return arguments(args, host: host) }
        var argv = ["--input-raw", args.capture(for: host), "--output-tcp", fanIn.forwardAddress(in: inventory)]
        for method in args.allowMethods { argv += ["--http-allow-method", method] }
        return argv + args.extraArgs
    }
}
