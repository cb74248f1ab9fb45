# ParaphraseService API image.
#   docker build -t paraphrase-service .                                  (CPU LibTorch)
#   docker build --build-arg TORCH_BACKEND=cuda -t paraphrase-service:cuda .   (CUDA LibTorch; not verified by us)
# Ubuntu 24.04 based .NET images: their libstdc++ (GCC 13+) has what LibTorch 2.10 needs.
ARG TORCH_BACKEND=cpu

FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
ARG TORCH_BACKEND
# gcc builds the AVX512-VNNI int8 sums (src/ParaphraseService.Model/Kernels/Native); the image needs only the library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/ParaphraseService.Api/ParaphraseService.Api.csproj -c Release -o /app -p:TorchBackend=${TORCH_BACKEND}

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app .
# One volume for the Hugging Face cache, the adapters and the fine-tune jobs (SQLite database, datasets, checkpoints).
ENV ASPNETCORE_URLS=http://+:8080 \
    HF_HOME=/data/huggingface \
    Adapters__Directory=/data/adapters \
    FineTunes__Directory=/data/fine-tunes
RUN mkdir -p /data && chown app:app /data
VOLUME /data
USER app
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
  CMD curl -fsS http://localhost:8080/health/live || exit 1
ENTRYPOINT ["dotnet", "ParaphraseService.Api.dll"]
