import ArgumentParser
import Fleet

/// `-t`/`-T`: bare seconds as Fabric took them (`10`, `2.5`) or a duration (`10s`, `5m`), greater
/// than zero. Parsed once, by ArgumentParser (through ``parse(_:)``, so a bad value says what
/// is expected); a bad value is a usage error naming the option.
struct TimeoutArgument: ExpressibleByArgument, Sendable {
    var duration: Duration

    init?(argument: String) {
        guard let value = FabricOptions.seconds(argument), value > .zero else { return nil }
        duration = value
    }

    /// For `@Option(transform:)`: the reason travels in ArgumentParser's message.
    @Sendable static func parse(_ text: String) throws -> TimeoutArgument {
        guard let value = TimeoutArgument(argument: text) else {
            throw ValidationError("not a number of seconds or a duration; use e.g. 60 or 5m")
        }
        return value
    }

    static var defaultCompletionKind: CompletionKind { .list(["10", "30s", "1m", "5m", "10m"]) }
}
