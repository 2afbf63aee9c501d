import GoReplayCLI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

exit(
    await GoReplayCommand(rawInputFactory: LiveCapture.factory).run(arguments: Array(CommandLine.arguments.dropFirst()))
)
