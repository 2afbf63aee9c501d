/// The fan-in topology of `replay.fan_in`: capture hosts forward with
/// `--output-tcp` to one replay host, which alone replays to the targets
/// (`--input-tcp` + `--output-http`), so one process owns the rate limit and
/// the target's connections.
public struct ReplayFanIn: Sendable, Hashable {
    /// Name of the inventory host that replays.
    public var replayer: String
    /// Port it listens on (`--input-tcp :PORT`).
    public var port: Int
    /// Replay target URLs (`--output-http` on the replayer).
    public var targets: [String]
    /// Further arguments for the replayer, passed as given.
    public var extraArgs: [String]

    public static let defaultPort = 28020

    public init(replayer: String, port: Int = ReplayFanIn.defaultPort, targets: [String], extraArgs: [String] = []) {
        self.replayer = replayer
        self.port = port
        self.targets = targets
        self.extraArgs = extraArgs
    }

    /// Whether `host` is the replayer (names match case-insensitively).
    public func isReplayer(_ host: FleetHost) -> Bool { host.name.lowercased() == replayer.lowercased() }

    /// Where capture hosts send: the replayer's inventory address, else its name.
    public func forwardAddress(in inventory: Inventory) -> String {
        let host = inventory.hosts.first { isReplayer($0) }
        let address = host?.address ?? replayer
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}
