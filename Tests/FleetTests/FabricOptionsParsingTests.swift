import Testing

@testable import Fleet

@Suite("Fabric option values")
struct FabricOptionsParsingTests {
    @Test func parallelSpellings() throws {
        #expect(try FabricOptions.normalise(["-P", "3", "production"]) == ["-P", "-z", "3", "production"])
        #expect(try FabricOptions.normalise(["--parallel=4", "production"]) == ["-P", "-z", "4", "production"])
        // Fabric's switch form is left alone: the next word is not a number.
        #expect(try FabricOptions.normalise(["-P", "-z", "5", "production"]) == ["-P", "-z", "5", "production"])
        #expect(try FabricOptions.normalise(["-P", "production"]) == ["-P", "production"])
    }

    @Test func remainderIsMarkedAndNeverScanned() throws {
        // `-p` after `--` is part of the command, not Fabric's password option.
        #expect(
            try FabricOptions.normalise(["production", "--", "ls", "-p"])
                == ["production", "--", FabricOptions.remainderMarker, "ls", "-p"])
    }

    @Test func refusedOptionsSayWhy() {
        for (arguments, option) in [
            (["-A"], "-A"), (["--forward-agent"], "--forward-agent"), (["-D"], "-D"),
            (["--password=x"], "--password"), (["-p", "x"], "-p"), (["-I"], "-I"),
            (["--sudo-password", "x"], "--sudo-password"), (["-f", "fabfile.py"], "-f"),
            (["-c", "rc"], "-c"), (["-s", "/bin/zsh"], "-s"), (["--gss-kex"], "--gss-kex"),
            (["--skip-unknown-tasks"], "--skip-unknown-tasks"),
        ] {
            #expect(throws: FabricOptionError.self, "\(arguments)") {
                try FabricOptions.normalise(["production"] + arguments)
            }
            do {
                _ = try FabricOptions.normalise(arguments)
            } catch {
                #expect(error.option == option)
                #expect(!error.reason.isEmpty && !error.reason.contains("\n"))
            }
        }
    }

    @Test func secondsOrDurations() {
        #expect(FabricOptions.seconds("60") == .seconds(60))
        #expect(FabricOptions.seconds("2.5") == .milliseconds(2500))
        #expect(FabricOptions.seconds("5m") == .seconds(300))
        #expect(FabricOptions.seconds(" 10s ") == .seconds(10))
        #expect(FabricOptions.seconds("soon") == nil)
        #expect(FabricOptions.seconds("-1") == nil)
        #expect(FabricOptions.seconds("") == nil)
        #expect(FabricOptions.seconds("1e99") == nil)
    }

    /// Fabric's `--set`: `_escape_split` on `,` then `=`; a bare key is True.
    @Test func setValues() throws {
        #expect(
            try FabricOptions.settings([#"a=1,b,c=,d=x\,y,e=p\=q"#, "a=2"])
                == ["a": "2", "b": "True", "c": "", "d": "x,y", "e": "p=q"])
        #expect(throws: FabricOptionError.self) { try FabricOptions.settings(["a-b=c"]) }
        #expect(throws: FabricOptionError.self) { try FabricOptions.settings(["=c"]) }
        #expect(throws: FabricOptionError.self) { try FabricOptions.settings(["a=b\\"]) }
    }

    @Test func outputLevels() throws {
        let defaults = OutputLevels()
        #expect(defaults.shows(.stdout) && defaults.shows(.running) && !defaults.shows(.debug))
        let quiet = try OutputLevels.parse(show: ["debug"], hide: ["running,stderr"])
        #expect(quiet.shown == [.status, .stdout, .warnings, .debug])
        #expect(try OutputLevels.parse(show: [], hide: ["everything"]).shown.isEmpty)
        #expect(try OutputLevels.parse(show: [], hide: ["output"]).shown == [.status, .running, .warnings])
        #expect(try OutputLevels.parse(show: [], hide: ["commands"]).shown == [.status, .stderr, .warnings])
        // A host's result is never hidden.
        let result = HostTaskResult(
            host: "a", task: "t", outcome: .exited(status: 1), duration: .zero,
            lastStderrLine: nil, time: .now)
        #expect(try OutputLevels.parse(show: [], hide: ["everything"]).shows(.hostFinished(result)))
        #expect(throws: FabricOptionError.self) { try OutputLevels.parse(show: [], hide: ["aborts"]) }
        #expect(throws: FabricOptionError.self) { try OutputLevels.parse(show: ["stdot"], hide: []) }
        // Showing a level that is always shown is fine.
        #expect(try OutputLevels.parse(show: ["aborts"], hide: []) == OutputLevels())
    }
}
