using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;
using Recommender.Serving;

namespace Recommender.Functions;

/// <summary>
/// Personalizer's model updates on its own: every <c>PersonalizerModelUpdateSchedule</c> (NCRONTAB, every 30 s) the
/// learner checks whether <c>modelExportFrequency</c> has passed since the last update and, if so, learns from the
/// rewards that became final meanwhile. Two instances running it at once write the model once (If-Match).
/// </summary>
public sealed class PersonalizerModelUpdate(PersonalizerLearner learner, ILogger<PersonalizerModelUpdate> log)
{
    [Function("PersonalizerModelUpdate")]
    public async Task Run([TimerTrigger("%PersonalizerModelUpdateSchedule%")] TimerInfo timer, CancellationToken cancellationToken)
    {
        var update = await learner.UpdateAsync(cancellationToken: cancellationToken);
        if (update.Ran)
            log.LogInformation("Personalizer model updated: {Learned} events learned, {Dropped} never activated", update.Learned, update.Dropped);
    }
}
