using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Text.Json;

namespace Recommender.TrainingJob;

/// <summary>
/// One command-line option per setting of a settings record (<see cref="Recommender.Training.SequenceModelConfig"/>, or
/// retrain's <see cref="Recommender.Training.Reinforcement.PolicyStageConfig"/> under a prefix), named as the record's JSON
/// (<c>--maxLength</c>, with <c>--max-length</c> as an alias), its type and default in the help, and a value that does not
/// parse as the setting's type refused by name before anything runs. What was given goes to <see cref="Recommender.Training.Settings.Load"/>
/// as the overrides of the record's defaults and config file, so the record stays the one place a setting is defined.
/// </summary>
public sealed class SettingOptions
{
    private readonly List<(Option<string> Option, string Setting)> _options = [];

    public SettingOptions(Type settings, object defaults, string prefix = "")
    {
        foreach (var property in settings.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            // The name the record's JSON (and so a --config file) gives it, and the same in kebab case.
            var setting = JsonNamingPolicy.CamelCase.ConvertName(property.Name);
            var kebab = JsonNamingPolicy.KebabCaseLower.ConvertName(property.Name);
            var aliases = kebab == setting ? Array.Empty<string>() : ["--" + prefix + kebab];
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            var option = new Option<string>("--" + prefix + setting, aliases)
            {
                HelpName = HelpName(type),
                Description = $"{settings.Name}.{property.Name} (default: {Format(property.GetValue(defaults))})",
            };
            option.Validators.Add(result =>
            {
                var value = result.GetValueOrDefault<string>();
                if (value is not null && !Parses(type, value))
                    result.AddError($"--{prefix}{setting}: '{value}' is not {Expected(type)}");
            });
            _options.Add((option, setting));
        }
    }

    public IEnumerable<Option> Options => _options.Select(o => o.Option);

    /// <summary>The settings given on this command line, by their names in the record.</summary>
    public Dictionary<string, string> Given(ParseResult parse) =>
        _options.Where(o => parse.GetResult(o.Option) is { Implicit: false }).ToDictionary(o => o.Setting, o => parse.GetValue(o.Option)!);

    private static string HelpName(Type type) =>
        type == typeof(int) || type == typeof(long) ? "integer"
        : type == typeof(double) || type == typeof(float) ? "number"
        : type == typeof(bool) ? "true|false"
        : "value";

    private static string Expected(Type type) => HelpName(type) switch { "integer" => "an integer", "number" => "a number", _ => "true or false" };

    private static bool Parses(Type type, string value) =>
        type == typeof(int) || type == typeof(long) ? long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
        : type == typeof(double) || type == typeof(float) ? double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _)
        : type != typeof(bool) || bool.TryParse(value, out _);

    private static string Format(object? value) => value switch
    {
        null => "none",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => value.ToString() ?? "",
    };
}
