using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaphraseService.Model.Core;

/// <summary>
/// config.json's eos_token_id as Hugging Face accepts it: one id, a list of ids (<c>[50256, 50000]</c>), or null for
/// none. Written back the same way: a single id as a number.
/// </summary>
internal sealed class EosTokenIdsConverter : JsonConverter<IReadOnlyList<int>>
{
    public override bool HandleNull => true;

    public override IReadOnlyList<int> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return [];
            case JsonTokenType.Number when reader.TryGetInt32(out var id):
                return [id];
            case JsonTokenType.StartArray:
                var ids = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var item))
                        throw new JsonException("eos_token_id is a list that holds something other than an integer token id.");
                    ids.Add(item);
                }
                return ids;
            default:
                throw new JsonException("eos_token_id must be a token id, a list of token ids, or null.");
        }
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int> value, JsonSerializerOptions options)
    {
        if (value.Count == 0)
        {
            writer.WriteNullValue();
        }
        else if (value.Count == 1)
        {
            writer.WriteNumberValue(value[0]);
        }
        else
        {
            writer.WriteStartArray();
            foreach (var id in value) writer.WriteNumberValue(id);
            writer.WriteEndArray();
        }
    }
}
