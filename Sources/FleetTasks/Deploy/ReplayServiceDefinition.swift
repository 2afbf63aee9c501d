import Fleet
import Foundation
import SSHTransport

/// The service definition that runs goreplay on a host, rendered for the
/// host's service manager from the inventory's `replay` settings.
public struct ReplayServiceDefinition: Sendable, Hashable {
    /// Where the definition lives on the host.
    public var path: String
    /// The file's content.
    public var content: String
    /// The file's mode.
    public var mode: Int32
    /// A command to run after the file changed (e.g. `systemctl daemon-reload`).
    public var afterChange: String?
    /// The goreplay command line, for display.
    public var arguments: [String]

    /// Renders the definition for `host`, or explains why it cannot.
    public static func render(
        for host: FleetHost, inventory: Inventory, manager: ServiceManager
    ) throws(DeployError) -> ReplayServiceDefinition {
        guard let settings = inventory.replay else {
            throw DeployError(
                host: host.name, reason: "the \(inventory.name) inventory has no replay: block",
                remedy: "add replay settings (docs/inventory.md)")
        }
        let argv = try topologyArguments(settings, host: host, inventory: inventory)
        let service = settings.service
        let binary = settings.binaryPath
        // The inventory parser refuses these already, with the file and line; this keeps an
        // inventory built in code (or a host address from a live source) from writing a unit
        // with a directive of its own.
        for value in [binary, service, inventory.name] + argv {
            if let bad = value.unicodeScalars.first(where: TerminalText.needsEscape) {
                throw DeployError(
                    host: host.name,
                    reason:
                        "'\(TerminalText.visible(value))' contains the control character U+\(String(format: "%04X", bad.value)) and would be written into \(service)'s service definition",
                    remedy: "remove it from the inventory's replay settings")
            }
        }
        let header =
            "Written by govuk-fab deploy-goreplay from the \(inventory.name) inventory; local changes are overwritten."
        switch manager {
        case .supervisor:
            let line = ([binary] + argv).map(shellQuote).joined(separator: " ")
            return ReplayServiceDefinition(
                path: "\(SupervisorLayout.servicesDirectory)/\(service)/run",
                content: "#!/bin/sh\n# \(header)\nexec \(line)\n", mode: 0o755, afterChange: nil, arguments: argv)
        case .systemd:
            let line = ([binary] + argv).map(systemdQuote).joined(separator: " ")
            let unit = """
                # \(header)
                [Unit]
                Description=GoReplay: mirror HTTP traffic to another environment
                After=network-online.target

                [Service]
                ExecStart=\(line)
                Restart=on-failure
                RestartSec=5

                [Install]
                WantedBy=multi-user.target

                """
            return ReplayServiceDefinition(
                path: "/etc/systemd/system/\(service).service", content: unit, mode: 0o644,
                afterChange: "systemctl daemon-reload", arguments: argv)
        case .upstart:
            // The shape of puppet-gor's job, which GOV.UK ran as `gor`.
            let continued = argv.map { "  " + shellQuote($0) }.joined(separator: " \\\n")
            let job = """
                # \(header)
                description "Gor traffic replay"
                start on runlevel [2345]
                stop on runlevel [!2345]
                respawn
                respawn limit 5 20
                exec \(shellQuote(binary)) \\
                \(continued)

                """
            return ReplayServiceDefinition(
                path: "/etc/init/\(service).conf", content: job, mode: 0o644, afterChange: nil, arguments: argv)
        case .sysv:
            throw DeployError(
                host: host.name, reason: "hosts with sysv init are not supported by deploy-goreplay",
                remedy: "use systemd, upstart or supervisor as the host's service manager")
        }
    }

    /// goreplay's command line from the inventory's arguments, in GoReplay's spelling.
    static func arguments(_ args: ReplayArguments, host: FleetHost) -> [String] {
        var argv = ["--input-raw", args.capture(for: host)]
        for target in args.targets { argv += ["--output-http", target] }
        for method in args.allowMethods { argv += ["--http-allow-method", method] }
        return argv + args.extraArgs
    }

    /// systemd's ExecStart quoting: double quotes, with `\` and `"` escaped;
    /// `%` doubled so specifiers are not expanded; `$` doubled against variable expansion.
    static func systemdQuote(_ word: String) -> String {
        let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./:=,@+".contains($0) }
        if plain && !word.isEmpty { return word }
        var out = "\""
        for character in word {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "%": out += "%%"
            case "$": out += "$$"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}

/// Why a deploy cannot proceed on a host.
public struct DeployError: Error, Sendable, CustomStringConvertible {
    public var host: String
    public var reason: String
    public var remedy: String?

    public init(host: String, reason: String, remedy: String? = nil) {
        self.host = host
        self.reason = reason
        self.remedy = remedy
    }

    public var description: String {
        "deploy-goreplay on \(host): \(reason)" + (remedy.map { " — \($0)" } ?? "")
    }
}
