import Foundation
import TestFleet
import Testing

/// The first stderr line, which must be the whole error.
private func errorLine(_ result: CommandRunResult) -> String {
    result.stderr.split(separator: "\n").first.map(String.init) ?? ""
}

/// Lines the text renderer printed for `host`'s stdout.
private func stdoutLines(_ result: CommandRunResult, host: String) -> [String] {
    result.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("[\(host)] out: ") }
        .map { String($0.dropFirst("[\(host)] out: ".count)) }
}

/// Fabric 1 options and words through the real binary, without hosts: what is accepted, what is
/// refused, and that every refusal is one line with exit 2.
@Suite("Fabric options on the command line", .enabled(if: GovukFabBinary.exists, "needs a built govuk-fab"))
struct FabricOptionsCLITests {
    @Test func informationNeedsNoEnvironment() async throws {
        let version = try await CLI.run(["-V"])
        #expect(version.status == 0 && version.stdout.hasPrefix("govuk-fab "), "\(version)")
        #expect(try await CLI.run(["--version"]).stdout == version.stdout)

        let list = try await CLI.run(["-l"])
        #expect(list.status == 0 && list.stdout.contains("app.start"), "\(list)")
        let short = try await CLI.run(["--shortlist"])
        #expect(short.status == 0, "\(short)")
        let names = short.stdout.split(separator: "\n").map(String.init)
        #expect(names.contains("app.start") && names.contains("check-goreplay"))
        #expect(names.allSatisfy { !$0.contains(" ") }, "names only: \(short.stdout)")
        #expect(try await CLI.run(["-l", "-F", "short"]).stdout == short.stdout)

        for arguments in [["-d", "app.start"], ["help:app.start"], ["--display", "app.start"]] {
            let help = try await CLI.run(arguments)
            #expect(help.status == 0 && help.stdout.hasPrefix("app.start:NAME"), "\(arguments): \(help)")
        }
        let unknown = try await CLI.run(["-d", "app.strat"])
        #expect(unknown.status == 2)
        #expect(errorLine(unknown).contains("did you mean 'app.start'"), "\(unknown)")
    }

    /// Refused options say why in one line, exit 2, and run nothing.
    @Test(arguments: [
        (["-A", "production", "all", "hosts"], "libssh2 1.10"),
        (["--forward-agent", "production", "all", "hosts"], "ssh -A"),
        (["-D", "production", "all", "hosts"], "always checks host keys"),
        (["-p", "secret", "production", "all", "hosts"], "shell history"),
        (["--password=secret", "production", "all", "hosts"], "shell history"),
        (["-F", "/root/.ssh/config", "-l"], "--ssh-config-path"),
        (["-F", "short", "production", "all", "hosts"], "only changes --list"),
        (["--hide", "aborts", "production", "all", "hosts"], "always shown"),
        (["--hide", "stdot", "production", "all", "hosts"], "did you mean 'stdout'"),
        (["-T", "soon", "production", "all", "hosts"], "number of seconds"),
        (["-z", "0", "production", "all", "hosts"], "1 or more"),
        (["--set", "a-b=c", "production", "all", "hosts"], "not a setting name"),
        (["-g", "user@", "production", "all", "hosts"], "-g/--gateway"),
        (["--serial", "-P", "production", "all", "hosts"], "contradict"),
        (["-i", "/nonexistent/key", "production", "all", "hosts"], "-i /nonexistent/key"),
        (["production", "-H", "cache-1"], "no task given"),
        (["production", "--", " "], "'--' needs a command"),
        (["production", "hosts:hosts=cache-1;;cache-2"], "empty name"),
        (["aws_productoin", "all", "hosts"], "did you mean 'aws_production'"),
        (["production", "app.strat:nginx"], "unknown task 'app.strat' (did you mean 'app.start'"),
        (["production", "cache-1", "do:uptime"], "did you mean '-H cache-1'"),
        (["production", "do:uptime,hosts=cache-9"], "host 'cache-9' is not in the production inventory"),
    ])
    func refusals(arguments: [String], expected: String) async throws {
        let result = try await CLI.run(arguments)
        #expect(result.status == 2, "\(result)")
        #expect(errorLine(result).hasPrefix("govuk-fab: error: "), "\(result)")
        #expect(errorLine(result).contains(expected), "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
    }

    /// The issue's dry runs: per-task hosts narrow, `-P -z 5` and `-P 3` are parallelism, `-H` is
    /// trimmed, `-T 60` is seconds, and each command is printed once.
    @Test func dryRunsShowTheNarrowedPlan() async throws {
        let narrowed = try await CLI.run([
            "--dry-run", "-H", "cache-1,cache-2", "production",
            "sdo:service nginx restart,hosts=cache-2",
        ])
        #expect(narrowed.status == 0, "\(narrowed)")
        #expect(narrowed.stdout.contains("[cache-2] would run: "), "\(narrowed)")
        #expect(!narrowed.stdout.contains("[cache-1]"), "cache-1 is not touched: \(narrowed)")
        // Once per host, not `run:` and then `would run:`.
        #expect(narrowed.stdout.components(separatedBy: "service nginx restart\n").count - 1 == 1, "\(narrowed.stdout)")

        let remainder = try await CLI.run([
            "--dry-run", "-P", "-z", "5", "-T", "60", "-H", " cache-1 , cache-2 ",
            "production", "--", "uname", "-a",
        ])
        #expect(remainder.status == 0, "\(remainder)")
        for host in ["cache-1", "cache-2"] {
            #expect(remainder.stdout.contains("[\(host)] would run: uname -a"), "\(remainder)")
        }
        let oldSpelling = try await CLI.run(["--dry-run", "-P", "3", "production", "class:cache", "do:uptime"])
        #expect(oldSpelling.status == 0, "\(oldSpelling)")

        let roles = try await CLI.run(["--dry-run", "-R", "cache", "-x", "cache-1", "production", "do:uptime"])
        #expect(
            roles.status == 0 && !roles.stdout.contains("[cache-1]") && roles.stdout.contains("[cache-2]"), "\(roles)")
        let quiet = try await CLI.run(["--dry-run", "--hide", "everything", "production", "class:cache", "do:uptime"])
        #expect(
            quiet.status == 0 && !quiet.stdout.contains("would run") && quiet.stdout.contains("Summary"), "\(quiet)")
    }

    /// `--ssh-config-path /dev/null` is "no file", as with OpenSSH's `-F /dev/null`.
    @Test func sshConfigPathDevNull() async throws {
        let result = try await CLI.run([
            "--dry-run", "--ssh-config-path", "/dev/null", "production", "class:cache", "do:uptime",
        ])
        #expect(result.status == 0, "\(result)")
    }
}

/// A loopback port that accepts TCP connections (the kernel completes them) but never speaks SSH,
/// so a connect waits until the connect timeout.
private final class SilentListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

/// `-t`, `-T`, `-u`, `-i`, `-k`, `-n`, per-task `hosts=` and `-- COMMAND` against real sshd hosts.
@Suite(
    "Fabric options on the test fleet", .serialized,
    .enabled(if: fleetAvailable, "needs root, sshd and a built govuk-fab"))
struct FabricOptionsFleetTests {
    /// A per-task `hosts=` narrows that task only; the next task runs on every selected host.
    @Test func perTaskHostsNarrowOneTask() async throws {
        let fleet = try FleetInventory(hosts: 3, prefix: "fab")
        let (first, second, third) = (fleet.names[0], fleet.names[1], fleet.names[2])
        let result = try await fleet.fab([
            "-H", fleet.names.joined(separator: ","), "do:echo narrowed,hosts=\(second)",
            "do:echo everyone", "do:echo excluded,exclude_hosts=\(first);\(third)",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(stdoutLines(result, host: second) == ["narrowed", "everyone", "excluded"], "\(result)")
        for host in [first, third] {
            #expect(stdoutLines(result, host: host) == ["everyone"], "\(result)")
        }
    }

    /// `-- uname -a` runs on each selected host, after the tasks.
    @Test func remainderCommandRunsOnEachHost() async throws {
        let fleet = try FleetInventory(hosts: 2, prefix: "fab")
        let result = try await fleet.fab(["all", "do:echo first", "--", "uname", "-s", "&&", "echo", "second"])
        #expect(result.status == 0, "\(result)")
        for host in fleet.names {
            #expect(stdoutLines(result, host: host) == ["first", "Linux", "second"], "\(result)")
        }
    }

    /// `-u` logs in as that user instead of the inventory's.
    @Test func userOption() async throws {
        let fleet = try FleetInventory(hosts: 1, prefix: "fab")
        let host = fleet.names[0]
        let inventoryUser = try await fleet.fab(["all", "do:id -un"])
        #expect(stdoutLines(inventoryUser, host: host) == [fleet.fleet.user], "\(inventoryUser)")
        let asRoot = try await fleet.fab(["-u", fleet.fleet.rootUser, "all", "do:id -un"])
        #expect(asRoot.status == 0, "\(asRoot)")
        #expect(stdoutLines(asRoot, host: host) == [fleet.fleet.rootUser], "\(asRoot)")
    }

    /// `-i` supplies the key an inventory without `identity_files` lacks; `-k` drops the
    /// inventory's keys but keeps `-i`.
    @Test func identityAndNoKeys() async throws {
        let fleet = try FleetInventory(hosts: 1, prefix: "fab")
        let key = fleet.fleet.clientKeyPath
        let keyless = fleet.directory + "/keyless.yml"
        let yaml = try String(contentsOfFile: fleet.inventoryPath, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("identity_files:") }.joined(separator: "\n")
        try yaml.write(toFile: keyless, atomically: true, encoding: .utf8)
        let state = ["XDG_STATE_HOME": fleet.directory + "/state"]
        let without = try await CLI.run(["--inventory", keyless, "testfleet", "all", "do:true"], environment: state)
        #expect(without.status == 1, "no key, no login: \(without)")
        let with = try await CLI.run(
            ["--inventory", keyless, "testfleet", "-i", key, "all", "do:true"], environment: state)
        #expect(with.status == 0, "\(with)")

        let noKeys = try await fleet.fab(["-k", "all", "do:true"])
        #expect(noKeys.status == 1, "-k drops the inventory's key: \(noKeys)")
        let noKeysWithI = try await fleet.fab(["-k", "-i", key, "all", "do:true"])
        #expect(noKeysWithI.status == 0, "\(noKeysWithI)")
    }

    /// `-T 1` (bare seconds) kills a command that runs longer; the other host is unaffected.
    @Test func commandTimeoutInSeconds() async throws {
        let fleet = try FleetInventory(hosts: 2, prefix: "fab")
        let (slow, quick) = (fleet.names[0], fleet.names[1])
        let started = ContinuousClock.now
        let result = try await fleet.fab([
            "-T", "1", "-H", "\(slow),\(quick)", "do:sleep 60,hosts=\(slow)", "do:echo done",
        ])
        print("-T 1 on sleep 60: exit \(result.status) after \(ContinuousClock.now - started)")
        // The inventory's command timeout is 60 s; a loaded machine still ends well before it.
        #expect(ContinuousClock.now - started < .seconds(45))
        #expect(result.status == 1, "\(result)")
        #expect(stdoutLines(result, host: quick) == ["done"], "\(result)")
        #expect(stdoutLines(result, host: slow).isEmpty, "\(result)")
        #expect(result.stdout.contains("timeout"), "\(result)")
    }

    /// `-t 1` (bare seconds) gives up on a host that never answers long before the inventory's 20 s.
    @Test func connectTimeoutInSeconds() async throws {
        let fleet = try FleetInventory(hosts: 1, prefix: "fab")
        let silent = try SilentListener()
        let started = ContinuousClock.now
        let result = try await fleet.fab(["-t", "1", "-H", "127.0.0.1:\(silent.port)", "do:true"])
        print("-t 1 against a silent port: exit \(result.status) after \(ContinuousClock.now - started)")
        #expect(ContinuousClock.now - started < .seconds(15), "the inventory says 20s; -t 1 must win")
        #expect(result.status == 1, "\(result)")
        #expect(
            result.stdout.lowercased().contains("timed out") || result.stdout.lowercased().contains("timeout"),
            "\(result)")
    }

    /// Fabric's `--serial --abort-on-failure` stops at an unreachable host; `--skip-bad-hosts` goes on
    /// past it, but still stops at a command that fails.
    @Test func skipBadHosts() async throws {
        let fleet = try FleetInventory(hosts: 2, prefix: "fab")
        let (down, up) = (fleet.names[0], fleet.names[1])
        try fleet.fleet.stopHost(down)
        let hosts = ["-H", "\(down),\(up)"]
        let aborted = try await fleet.fab(["--serial", "--abort-on-failure"] + hosts + ["do:echo reached"])
        #expect(aborted.status == 1, "\(aborted)")
        #expect(stdoutLines(aborted, host: up).isEmpty, "\(aborted)")
        let skipped = try await fleet.fab(
            ["--serial", "--abort-on-failure", "--skip-bad-hosts"] + hosts + ["do:echo reached"])
        #expect(skipped.status == 1, "the unreachable host still fails the run: \(skipped)")
        #expect(stdoutLines(skipped, host: up) == ["reached"], "\(skipped)")
        try fleet.fleet.startHost(down)
        let failing = try await fleet.fab(
            ["--serial", "--abort-on-failure", "--skip-bad-hosts"] + hosts + ["do:echo reached; false"])
        #expect(stdoutLines(failing, host: down) == ["reached"], "\(failing)")
        #expect(stdoutLines(failing, host: up).isEmpty, "a failed command still aborts: \(failing)")
    }

    /// `-n 3` tries a refused host three times (one second apart) before giving up.
    @Test func connectionAttempts() async throws {
        let fleet = try FleetInventory(hosts: 2, prefix: "fab")
        try fleet.fleet.stopHost(fleet.names[0])
        let once = ContinuousClock.now
        let single = try await fleet.fab(
            ["-H", fleet.names[0], "do:true"], environment: ["GOVUK_FAB_LOG_LEVEL": "info"])
        let singleTime = ContinuousClock.now - once
        #expect(single.status == 1, "\(single)")
        #expect(!(single.stdout + single.stderr).contains("connect attempt"), "\(single)")
        let started = ContinuousClock.now
        let retried = try await fleet.fab(
            ["-n", "3", "-H", fleet.names.joined(separator: ","), "do:true"],
            environment: ["GOVUK_FAB_LOG_LEVEL": "info"])
        print("-n 3 against a stopped host: \(ContinuousClock.now - started) (one attempt: \(singleTime))")
        #expect(retried.status == 1, "\(retried)")
        #expect((retried.stdout + retried.stderr).contains("connect attempt 2 of 3"), "\(retried)")
        #expect(
            ContinuousClock.now - started >= .seconds(2),
            "two pauses between three attempts (one try took \(singleTime))")
        // The other host's result is there.
        #expect(retried.stdout.contains(fleet.names[1]), "\(retried)")
    }
}

/// `-g` reaches hosts only a jump host can reach, as the inventory's `gateway:` would.
@Suite(
    "Fabric -g on the test fleet", .serialized,
    .enabled(
        if: TestFleet.supportsIsolation && GovukFabBinary.exists, "needs root, ip netns, socat and the built binary"))
struct FabricGatewayOptionTests {
    @Test func gatewayOption() async throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 2, namePrefix: "gwopt"))
        defer { fleet.stop() }
        try fleet.isolate(fleet.hosts[0].name, bridge: true)
        try fleet.isolate(fleet.hosts[1].name)
        let (gateway, hidden) = (fleet.hosts[0], fleet.hosts[1])
        let directory = fleet.workDirectory + "/cli"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let inventory = directory + "/testfleet.yml"
        try """
        name: testfleet
        ssh:
          user: \(fleet.user)
          identity_files: [\(fleet.clientKeyPath)]
          known_hosts: [\(fleet.knownHostsPath)]
          connect_timeout: 3s
        hosts:
          - {name: \(hidden.name), address: \(hidden.address), port: \(hidden.port)}

        """.write(toFile: inventory, atomically: true, encoding: .utf8)
        let environment = ["XDG_STATE_HOME": directory + "/state"]
        let direct = try await CLI.run(
            ["--inventory", inventory, "testfleet", "all", "do:echo reached"], environment: environment)
        #expect(direct.status == 1, "isolated: unreachable without a gateway: \(direct)")
        let jumped = try await CLI.run(
            [
                "--inventory", inventory, "-g", "\(fleet.user)@\(gateway.address):\(gateway.port)", "testfleet", "all",
                "do:echo reached",
            ],
            environment: environment)
        #expect(jumped.status == 0, "\(jumped)")
        #expect(stdoutLines(jumped, host: hidden.name) == ["reached"], "\(jumped)")
    }
}
