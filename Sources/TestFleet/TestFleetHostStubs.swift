import Foundation

/// Stub commands for test hosts: scripts that record their arguments instead of
/// doing anything, so a fleet test can assert exactly what a task ran on which host,
/// as which user, in which order and with which quoting. A reboot is a stub, never real.
///
/// The stubs live in each host's own `/usr/local/bin` (a private path the fleet must be started
/// with), which comes before the system's directories on the PATH of every login (root or not)
/// and in sudo's `secure_path`; the test machine's `/usr/local/bin` is never written. A stub
/// acts only on a host that has `/etc/govuk-fab/stubs/enabled` (also private); on a host where
/// that was removed it execs the real command of the same name further down the PATH, except
/// the commands that would act on the test machine itself, which it refuses.
public struct TestFleetHostStubs: Sendable {
    /// Where stubs are installed, as each host sees it: add it to `TestFleetOptions.privatePaths`.
    public static let binDirectory = "/usr/local/bin"
    /// Per host (a default private path): `enabled`, `calls`, and per command
    /// `NAME.exit`, `NAME.out`, `NAME.err` or `NAME.sh` (sourced, with the arguments).
    public static let stateDirectory = "/etc/govuk-fab/stubs"
    /// First line of every stub; a file without it is never overwritten.
    static let signature = "# govuk-fab test stub"

    /// One recorded call.
    public struct Call: Sendable, Hashable, CustomStringConvertible {
        /// `id -un` of the caller: the SSH user, or `root` through sudo.
        public var user: String
        public var command: String
        public var arguments: [String]
        /// When it was called (nanoseconds since the epoch, the host's clock is the machine's).
        public var time: UInt64

        public init(user: String, command: String, arguments: [String], time: UInt64 = 0) {
            self.time = time
            self.user = user
            self.command = command
            self.arguments = arguments
        }

        public var description: String {
            ([user + ":", command] + arguments.map { $0.debugDescription }).joined(separator: " ")
        }
    }

    public let fleet: TestFleet

    /// Installs stubs named `commands` (idempotent; concurrent installs write the same
    /// bytes through a rename) and enables them on every host of `fleet`.
    public static func install(_ commands: [String], on fleet: TestFleet) throws -> TestFleetHostStubs {
        for command in commands {
            guard !command.isEmpty,
                command.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) })
            else {
                throw StubError(message: "stub name '\(command)' must be letters, digits, '_', '-' or '.'")
            }
        }
        let stubs = TestFleetHostStubs(fleet: fleet)
        for host in fleet.hosts {
            let directory = try stubs.realPath(host.name, binDirectory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o755)
            for command in commands {
                let path = directory + "/" + command
                try script(for: command).write(toFile: path, atomically: true, encoding: .utf8)
                chmod(path, 0o755)
            }
            try stubs.enable(on: host.name)
        }
        return stubs
    }

    /// Makes stubs act on `host` (they pass through to the real commands otherwise).
    public func enable(on host: String) throws {
        let directory = try realPath(host, Self.stateDirectory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The SSH user and root (through sudo) both append to `calls`.
        chmod(directory, 0o1777)
        FileManager.default.createFile(atPath: directory + "/enabled", contents: Data())
        if !FileManager.default.fileExists(atPath: directory + "/calls") {
            FileManager.default.createFile(atPath: directory + "/calls", contents: Data())
        }
        chmod(directory + "/calls", 0o666)
    }

    /// What `command` does on `host`: its exit status and output.
    public func setBehaviour(
        on host: String, _ command: String, exit status: Int32 = 0, stdout: String = "", stderr: String = ""
    ) throws {
        let directory = try realPath(host, Self.stateDirectory)
        try String(status).write(toFile: "\(directory)/\(command).exit", atomically: true, encoding: .utf8)
        try stdout.write(toFile: "\(directory)/\(command).out", atomically: true, encoding: .utf8)
        try stderr.write(toFile: "\(directory)/\(command).err", atomically: true, encoding: .utf8)
    }

    /// A shell fragment run in place of the default behaviour (`$@` are the arguments),
    /// for commands whose answer depends on the arguments.
    public func setScript(on host: String, _ command: String, _ body: String) throws {
        let directory = try realPath(host, Self.stateDirectory)
        try body.write(toFile: "\(directory)/\(command).sh", atomically: true, encoding: .utf8)
    }

    /// Every call recorded on any of `hosts`, oldest first, with the host's name.
    public func calls(on hosts: [String]) throws -> [(host: String, call: Call)] {
        var all: [(host: String, call: Call)] = []
        for host in hosts { all += try calls(on: host).map { (host, $0) } }
        return all.sorted { $0.call.time < $1.call.time }
    }

    /// Every call recorded on `host`, oldest first.
    public func calls(on host: String) throws -> [Call] {
        let path = try realPath(host, Self.stateDirectory) + "/calls"
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 3 else { return nil }
            let arguments = fields.dropFirst(3).map { field in
                Data(base64Encoded: field).map { String(decoding: $0, as: UTF8.self) } ?? "<undecodable \(field)>"
            }
            return Call(user: fields[1], command: fields[2], arguments: Array(arguments), time: UInt64(fields[0]) ?? 0)
        }
    }

    /// Forgets the calls recorded on every host and every behaviour set.
    public func reset() throws {
        for host in fleet.hosts {
            let directory = try realPath(host.name, Self.stateDirectory)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name != "enabled"
            {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
            FileManager.default.createFile(atPath: directory + "/calls", contents: Data())
            chmod(directory + "/calls", 0o666)
        }
    }

    private func realPath(_ host: String, _ path: String) throws -> String {
        guard let fleetHost = fleet.host(named: host) else { throw StubError(message: "no test host named \(host)") }
        let real = fleetHost.realPath(path)
        guard real != path else {
            throw StubError(
                message: "\(path) is not a private path of \(host); add it to TestFleetOptions.privatePaths")
        }
        return real
    }

    /// Commands a test host must never reach for real: they act on the test machine itself
    /// (its systemd, its packages), which the hosts share.
    static let neverPassedThroughOnTestHosts: Set<String> = [
        "shutdown", "reboot", "poweroff", "halt", "apt-get", "unattended-upgrade",
    ]

    static func script(for command: String) -> String {
        // A test host's PID 1 is its sshd; there the real command would reboot the machine.
        let guardTestHost =
            neverPassedThroughOnTestHosts.contains(command)
            ? """
              if [ "$(cat /proc/1/comm 2>/dev/null)" = sshd ]; then
                echo "\(command): refused on a test host without \(stateDirectory)/enabled (it would act on the test machine)" >&2
                exit 1
              fi

            """ : ""
        return """
            #!/bin/sh
            \(signature): records its arguments on hosts with \(stateDirectory)/enabled
            d=\(stateDirectory)
            n=\(command)
            if [ ! -f "$d/enabled" ]; then
            \(guardTestHost)
              # Not a stubbed host: the real command, found without this directory.
              PATH=$(printf '%s' ":$PATH:" | sed -e 's#:\(binDirectory):#:#g' -e 's#^:##' -e 's#:$##')
              export PATH
              exec "$n" "$@"
            fi
            line="$(date +%s%N)	$(id -un)	$n"
            for a in "$@"; do line="$line	$(printf '%s' "$a" | base64 -w0)"; done
            printf '%s\\n' "$line" >>"$d/calls"
            if [ -f "$d/$n.sh" ]; then . "$d/$n.sh"; exit $?; fi
            [ -f "$d/$n.out" ] && cat "$d/$n.out"
            [ -f "$d/$n.err" ] && cat "$d/$n.err" >&2
            exit "$(cat "$d/$n.exit" 2>/dev/null || echo 0)"

            """
    }
}

/// A stub that cannot be installed or read.
public struct StubError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
